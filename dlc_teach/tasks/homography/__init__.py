"""Multimodal image alignment with DeepLK and DLC+DeepLK (paper §4.3, Table 5, Figs. 8-10).

Introduced in chapter 7. Conventions (pixel centres, H: template -> input, ω = 8 corner offsets,
H(ω) = Translation(o, o) · ``geometry.corners_to_homography(ω, t, t)``, level rescaling) are stated
once in :mod:`dlc_teach.tasks.homography.warp`. Modules: ``warp`` (homographies, batched warp),
``lk`` (inverse-compositional LK, the LK loss), ``metrics`` (PE, success rates), ``data`` (offline
satellite/relief pairs, DeepLK's real data sets), ``model`` (feature networks per level),
``baseline`` (ORB/SIFT + RANSAC), ``experiment`` (the CLI experiment ``homography``).
"""
from .baseline import baseline_homographies, feature_ransac
from .data import basemap_pairs, load_deeplk_folder, load_pairs, make_basemap_pairs
from .experiment import DeepLKHomography, HomographyConfig, align, make_loss
from .lk import coarse_to_fine_lk, inverse_compositional_lk, lk_loss
from .metrics import THRESHOLDS, pixel_error, success_rates
from .model import DeepLKFeatures, feature_net, level_scale
from .warp import check_corners, homography_to_offsets, offsets_to_homography, scale_homography, warp

# ``warp`` (the function) is importable from here but left out of __all__: it shares its name with the module
# ``dlc_teach.tasks.homography.warp``, and the API page documents the function there.
__all__ = ["inverse_compositional_lk", "coarse_to_fine_lk", "lk_loss", "pixel_error", "success_rates",
           "THRESHOLDS", "offsets_to_homography", "homography_to_offsets", "scale_homography", "check_corners",
           "make_basemap_pairs", "basemap_pairs", "load_deeplk_folder", "load_pairs", "DeepLKFeatures",
           "feature_net", "level_scale", "feature_ransac", "baseline_homographies", "DeepLKHomography",
           "HomographyConfig", "align", "make_loss"]
