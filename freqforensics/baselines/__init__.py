"""The paper's classic baselines: kNN, Eigenfaces and PRNU, on the same prepared data as the models.

`python -m freqforensics.tools.classic_baselines {grid_search,train,test} --config=configs/baselines.py:NAME
--workdir=DIR`; in Python `freqforensics.baselines.commands.run(config, workdir, command)`. Modules:
one per baseline, `knn.py`, `eigenfaces.py` (scikit-learn) and `prnu.py` (streaming passes over
worker processes) with `noise_residuals.py` (PRNU's numerics, NumPy and PyWavelets); `commands.py`
(grid_search, train, test for every baseline), `context.py` (what a command shares), `inputs.py`
(subsets, feature batches, memory budget), `results.py` (results JSON, resumable passes),
`parallel.py` (ordered parallel map), `safe_io.py` (skops model files), `config.py` (the `baseline`
config fields and grids).
"""
