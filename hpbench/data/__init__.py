"""Datasets: specs, cameras, readers, crops, the synthetic hand renderer and the crop cache.

- ``specs``: frozen ``DatasetSpec`` per dataset (camera, joints, layout, cubes) in the ``datasets`` registry;
- ``camera``: uvd <-> xyz with each dataset's axis convention;
- ``formats``: readers (and writers) of ICVL, NYU and MSRA files, ``open_split``, ``DatasetError``;
- ``centers``: hand centres from centre files or from the depth;
- ``crop``: cube crops, their inverse (crop coordinates -> image uvd / world xyz), augmentations;
- ``hand``, ``render``, ``synth``: the kinematic hand, its depth rendering, ``hpbench synth``;
- ``cache``: the memory-mapped crop cache and its torch dataset; ``throughput``: pipeline timings.

Modules import lazily what they need (torch, scipy, PIL), so importing a spec stays cheap.
"""
