"""comfyui-tstitch: T-Stitch (trajectory stitching) for ComfyUI."""

try:
    import comfy_api.latest  # noqa: F401  (absent when imported outside ComfyUI, e.g. by pytest)
except ImportError:
    pass
else:
    from .nodes import TStitchExtension

    async def comfy_entrypoint() -> TStitchExtension:
        return TStitchExtension()
