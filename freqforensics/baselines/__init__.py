"""The paper's classic baselines: kNN, Eigenfaces and PRNU, on the same prepared data as the models.

`python -m freqforensics.baselines {grid_search,train,test} --config=configs/baselines.py:NAME
--workdir=DIR` (see `__main__.py`); in Python `freqforensics.baselines.run.run(config, workdir,
command)`. Modules: `knn.py`, `eigenfaces.py` (scikit-learn), `prnu.py` (the numerics, NumPy and
PyWavelets) with `prnu_run.py` (its streaming passes over worker processes), `data.py` (subsets,
feature batches, memory budget), `results.py` (results JSON, resumable passes), `safe_io.py`
(skops model files), `config.py` (the `baseline` config fields and grids).
"""
