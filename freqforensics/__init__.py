"""freqforensics: frequency-domain forensics of generated images in JAX/Flax.

Re-implements Frank et al., "Leveraging Frequency Analysis for Deep Fake Image Recognition"
(ICML 2020): models on log-scaled, standardised DCT coefficients detect generated images and
attribute them to their generator.
"""

__version__ = "0.1.0"
