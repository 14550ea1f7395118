"""Data, host side only (no JAX): image reading, preparation, prepared-dataset reading and input pipelines.

The images of the synthetic data set are made in `freqforensics.generators`; `loading.source_dir` asks it
for them when a config's `data.source` is 'synthetic'.
"""
