"""labnorm: literate, tested implementations of neural-network normalization techniques.

Each technique lives in one module whose docstring is its page on the site; see
https://github.com/labnorm/labnorm for the notebooks that build each one line by line.
Importing labnorm never touches the network.
"""

from ._version import __version__  # noqa: E402

from ._norm_batch import set_norm_batch  # noqa: E402
from .batch_channel_norm import BatchChannelNorm2d, EstimatedBatchNorm2d  # noqa: E402
from .batch_norm import BatchNorm2d, GroupNorm  # noqa: E402
from .batch_renorm import BatchRenorm2d, renorm_limits, renorm_schedule, set_renorm_limits  # noqa: E402
from .attention import CausalSelfAttention, QKNorm  # noqa: E402
from .dynamic_erf import DynamicErf  # noqa: E402
from .dynamic_tanh import DynamicTanh  # noqa: E402
from .evonorm import EvoNorm2dB0, EvoNorm2dS0  # noqa: E402
from .filter_response_norm import TLU, FilterResponseNorm2d  # noqa: E402
from .ghost_batch_norm import GhostBatchNorm2d  # noqa: E402
from .global_response_norm import GlobalResponseNorm2d  # noqa: E402
from .instance_norm import InstanceNorm2d  # noqa: E402
from .layer_norm import LayerNorm, LayerNorm2d, RMSNorm, RMSNorm2d  # noqa: E402
from .scale import get_scale, pick  # noqa: E402
from .stats import verdict  # noqa: E402
from .switch_norm import SwitchNorm2d, finalize_batch_average, load_official_state_dict  # noqa: E402
from .train.lr_finder import LRFinder  # noqa: E402
from .weight_norm import MeanOnlyBatchNorm, data_dependent_init, remove_weight_norm, weight_norm  # noqa: E402
from .weight_std import WSConv1d, WSConv2d, WSConvTranspose2d, weight_standardization  # noqa: E402

__all__ = [
    "BatchNorm2d", "GroupNorm", "BatchChannelNorm2d", "EstimatedBatchNorm2d",
    "MeanOnlyBatchNorm", "weight_norm", "remove_weight_norm", "data_dependent_init",
    "weight_standardization", "WSConv1d", "WSConv2d", "WSConvTranspose2d",
    "SwitchNorm2d", "finalize_batch_average", "load_official_state_dict",
    "LayerNorm", "LayerNorm2d", "RMSNorm", "RMSNorm2d", "InstanceNorm2d", "GhostBatchNorm2d", "DynamicTanh",
    "DynamicErf", "GlobalResponseNorm2d", "QKNorm", "CausalSelfAttention",
    "FilterResponseNorm2d", "TLU", "EvoNorm2dB0", "EvoNorm2dS0",
    "BatchRenorm2d", "renorm_limits", "renorm_schedule", "set_renorm_limits", "set_norm_batch",
    "LRFinder", "get_scale", "pick", "verdict", "__version__",
]
