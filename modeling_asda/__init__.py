"""ASDA (Audio Spectrogram Differential Attention) for Hugging Face transformers.

Importing the package registers ASDA with the transformers Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification

from .configuration_asda import AsdaConfig
from .modeling_asda import AsdaForAudioClassification, AsdaModel, AsdaPreTrainedModel


AutoConfig.register(AsdaConfig.model_type, AsdaConfig)
AutoModel.register(AsdaConfig, AsdaModel)
AutoModelForAudioClassification.register(AsdaConfig, AsdaForAudioClassification)

__all__ = ["AsdaConfig", "AsdaForAudioClassification", "AsdaModel", "AsdaPreTrainedModel"]
