"""Speed of T-Stitch through the real ComfyUI host, fraction by fraction: ``python -m bench.run --help``."""
