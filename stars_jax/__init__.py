"""stars_jax: MAMP and STARS for 3D skeleton action recognition in JAX/Flax."""
