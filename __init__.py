"""comfyui-tstitch: T-Stitch (trajectory stitching) for ComfyUI."""

# served at /extensions/<this folder>/: the node help pages the frontend reads from docs/<node>/<locale>.md
WEB_DIRECTORY = "./web"

try:
    import comfy_api.latest  # noqa: F401  (absent when imported outside ComfyUI, e.g. by pytest)
except ImportError:
    pass
else:
    from .nodes import TStitchExtension

    async def comfy_entrypoint() -> TStitchExtension:
        return TStitchExtension()
