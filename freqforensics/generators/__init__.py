"""Generators: what makes generated images, in JAX. The data side (`freqforensics.data`) only reads them.

`upsamplers` (simulated GAN output stages), `families` (trained generator families, weights in
`weights/`) and `family_training` (how those weights were learned), `synthetic` (the synthetic data
set: photo crops and the images of these generators as class folders) and `standins` (the paper's
data sets' folder layouts, filled from `synthetic`).
"""
