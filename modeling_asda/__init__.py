"""ASDA (Audio Spectrogram Differential Attention) for Hugging Face transformers.

Importing the package registers ASDA with the transformers Auto classes.
"""

import transformers
from transformers import AutoConfig, AutoFeatureExtractor

from .configuration_asda import AsdaConfig
from .feature_extraction_asda import AsdaFeatureExtractor, load_audio
from .modeling_asda import (
    AUTO_CLASSES,
    AsdaForAudioClassification,
    AsdaForAudioFrameClassification,
    AsdaForPreTraining,
    AsdaModel,
    AsdaPreTrainedModel,
    inverse_block_mask,
)


AutoConfig.register(AsdaConfig.model_type, AsdaConfig)
for auto_class_name, model_class in AUTO_CLASSES.items():
    getattr(transformers, auto_class_name).register(AsdaConfig, model_class)
AutoFeatureExtractor.register(AsdaConfig, AsdaFeatureExtractor)

__all__ = [
    "AsdaConfig",
    "AsdaFeatureExtractor",
    "AsdaForAudioClassification",
    "AsdaForAudioFrameClassification",
    "AsdaForPreTraining",
    "AsdaModel",
    "AsdaPreTrainedModel",
    "inverse_block_mask",
    "load_audio",
]
