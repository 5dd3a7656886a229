"""The node classes ComfyUI registers for this pack."""

from comfy_api.latest import ComfyExtension, io

from ._schema import refuse_odd_api_values
from .bk_sdm import TStitchBKSDMLoader
from .dit import TStitchClassIndex, TStitchDiTLoader, TStitchDiTScheduler, TStitchImageNetClass
from .guider import TStitchGuider
from .preview import TStitchSchedulePreview
from .probe import TStitchAgreementProbe
from .stage_sampler import TStitchStageSampler
from .stage_sigmas import TStitchStageSigmas
from .stages import TStitchStages
from .stitch import TStitchKSampler, TStitchModelPair
from .sweep import TStitchFractionSweep


class TStitchExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [refuse_odd_api_values(node) for node in (
            TStitchModelPair, TStitchKSampler, TStitchGuider, TStitchSchedulePreview, TStitchFractionSweep,
            TStitchAgreementProbe, TStitchDiTLoader, TStitchImageNetClass, TStitchDiTScheduler, TStitchStageSigmas,
            TStitchStages, TStitchClassIndex, TStitchStageSampler, TStitchBKSDMLoader)]
