"""``transformers`` architecture entries: models made from small configs with the model classes directly
(``Model(config)``: nothing is downloaded), seeded with ``torch.manual_seed``, dropout off, wrapped so
``forward`` takes one named tensor and returns plain tensors, as ``torch.export`` and the converters want.

The wrappers' parameter names (``pixel_values``, ``input_ids``, ``input_values``, ``input_features``) are
the ones transformers uses; ``torch.export`` names the program's placeholder after them, so deploykit
shows the same input name for the ``.pt2`` and the ONNX files.
"""

from __future__ import annotations

import torch
from torch import nn

SEED = 0


class ImageLogits(nn.Module):
    """``pixel_values`` -> ``logits`` (classification scores or a segmentation map)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


class TextOutput(nn.Module):
    """``input_ids`` -> one tensor of the model's output (``logits`` or ``last_hidden_state``)."""

    def __init__(self, model: nn.Module, field: str):
        super().__init__()
        self.model, self.field = model, field

    def forward(self, input_ids):
        return getattr(self.model(input_ids=input_ids), self.field)


class AudioEncoder(nn.Module):
    """``input_values`` (raw 16 kHz audio) -> ``last_hidden_state``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_values):
        return self.model(input_values=input_values).last_hidden_state


class MelEncoder(nn.Module):
    """``input_features`` (a log-mel spectrogram) -> ``last_hidden_state``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_features):
        return self.model(input_features=input_features).last_hidden_state


def _made(model_class, config) -> nn.Module:
    torch.manual_seed(SEED)
    return model_class(config).eval()


def vit(shape):
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=shape[-1], patch_size=16, hidden_size=192, num_hidden_layers=6,
                       num_attention_heads=3, intermediate_size=768, num_labels=1000)
    return ImageLogits(_made(ViTForImageClassification, config))


def swin(shape):
    from transformers import SwinConfig, SwinForImageClassification

    config = SwinConfig(image_size=shape[-1], patch_size=4, embed_dim=48, depths=[2, 2, 2, 2],
                        num_heads=[3, 6, 12, 24], window_size=7, num_labels=1000)
    return ImageLogits(_made(SwinForImageClassification, config))


def mobilevit(shape):
    from transformers import MobileViTConfig, MobileViTForImageClassification

    # apple/mobilevit-x-small's widths
    config = MobileViTConfig(image_size=shape[-1], hidden_sizes=[96, 120, 144],
                             neck_hidden_sizes=[16, 32, 48, 64, 80, 96, 384], num_labels=1000)
    return ImageLogits(_made(MobileViTForImageClassification, config))


def levit(shape):
    from transformers import LevitConfig, LevitForImageClassification

    config = LevitConfig(image_size=shape[-1], hidden_sizes=[128, 256, 384], num_attention_heads=[4, 6, 8],
                         depths=[2, 3, 4], key_dim=[16, 16, 16], num_labels=1000)  # facebook/levit-128S
    return ImageLogits(_made(LevitForImageClassification, config))


def convnext(shape):
    from transformers import ConvNextConfig, ConvNextForImageClassification

    config = ConvNextConfig(hidden_sizes=[48, 96, 192, 384], depths=[2, 2, 4, 2], num_labels=1000)
    return ImageLogits(_made(ConvNextForImageClassification, config))


def regnet(shape):
    from transformers import RegNetConfig, RegNetForImageClassification

    config = RegNetConfig(embedding_size=32, hidden_sizes=[48, 104, 208, 440], depths=[1, 3, 6, 6],
                          groups_width=8, layer_type="y", num_labels=1000)  # RegNetY-400MF
    return ImageLogits(_made(RegNetForImageClassification, config))


def segformer(shape):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(num_labels=19)  # the config's defaults are SegFormer-B0
    return ImageLogits(_made(SegformerForSemanticSegmentation, config))


def distilbert(shape):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=30522, dim=256, n_layers=4, n_heads=4, hidden_dim=1024, num_labels=2,
                              dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    return TextOutput(_made(DistilBertForSequenceClassification, config), "logits")


def mobilebert(shape):
    from transformers import MobileBertConfig, MobileBertModel

    config = MobileBertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                              intermediate_size=256, embedding_size=128, intra_bottleneck_size=64,
                              true_hidden_size=64, num_feedforward_networks=2, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
    return TextOutput(_made(MobileBertModel, config), "last_hidden_state")


def wav2vec2(shape):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                            conv_dim=(256,) * 7, num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16,
                            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                            feat_proj_dropout=0.0, mask_time_prob=0.0)
    return AudioEncoder(_made(Wav2Vec2Model, config))


def whisper_encoder(shape):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig(num_mel_bins=shape[1], d_model=256, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=1024, max_source_positions=shape[2] // 2, dropout=0.0)
    return MelEncoder(_made(WhisperEncoder, config))
