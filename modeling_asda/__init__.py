"""ASDA (Audio Spectrogram Differential Attention) for Hugging Face transformers.

Importing the package registers ASDA with the transformers Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, AutoModelForPreTraining

from .configuration_asda import AsdaConfig
from .modeling_asda import (
    AsdaForAudioClassification,
    AsdaForPreTraining,
    AsdaModel,
    AsdaPreTrainedModel,
    inverse_block_mask,
)


AutoConfig.register(AsdaConfig.model_type, AsdaConfig)
AutoModel.register(AsdaConfig, AsdaModel)
AutoModelForAudioClassification.register(AsdaConfig, AsdaForAudioClassification)
AutoModelForPreTraining.register(AsdaConfig, AsdaForPreTraining)

__all__ = [
    "AsdaConfig",
    "AsdaForAudioClassification",
    "AsdaForPreTraining",
    "AsdaModel",
    "AsdaPreTrainedModel",
    "inverse_block_mask",
]
