"""transformers' own common model and config tests (from the sdist of the pinned version) on both AV-CANet classes.

Every override below says why AV-CANet differs from the text-or-image models the common tests are written for.
"""

import copy
import unittest
from unittest.mock import patch

import pytest
import torch
from torch import nn

from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification, AVCANetModel
from tiny import TINY
from transformers_common import load_common_tests

test_modeling_common, test_configuration_common = load_common_tests()
ModelTesterMixin = test_modeling_common.ModelTesterMixin
ConfigTester = test_configuration_common.ConfigTester


class AVCANetModelTester:
    def __init__(self, parent, batch_size=2, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.is_training = is_training
        self.config_kwargs = dict(TINY)
        self.hidden_size = TINY["hidden_size"]
        self.num_segments = TINY["num_segments"]
        # the layers of the fusion: one per pyramid level (the common tests want at most 2)
        self.num_hidden_layers = TINY["num_pyramid_levels"]
        # per-stream hidden states: the branch output, one per pyramid level, the level-weighted sum
        self.expected_num_hidden_layers = TINY["num_pyramid_levels"] + 2

    def get_config(self):
        return AVCANetConfig(**self.config_kwargs)

    def prepare_config_and_inputs(self):
        config = self.get_config()
        frames = config.num_segments * config.frames_per_segment
        pixel_values_videos = torch.randn(
            self.batch_size, frames, config.num_channels, config.image_size, config.image_size
        )
        input_features = torch.randn(
            self.batch_size, config.num_mel_bins, config.num_segments * config.audio_frames_per_segment
        )
        audio_mask = torch.ones(self.batch_size, dtype=torch.long)
        labels = torch.randint(0, config.num_labels, (self.batch_size,))
        return config, pixel_values_videos, input_features, audio_mask, labels

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values_videos, input_features, audio_mask, _ = self.prepare_config_and_inputs()
        inputs = {"pixel_values_videos": pixel_values_videos, "input_features": input_features, "audio_mask": audio_mask}
        return config, inputs


class AVCANetModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (AVCANetModel, AVCANetForVideoClassification)
    # no token embeddings to resize: the input embedding is the Swin patch projection (a Conv3d)
    test_resize_embeddings = False
    # the pyramid's attention runs through scaled_dot_product_attention and returns no weights
    has_attentions = False

    def setUp(self):
        self.model_tester = AVCANetModelTester(self)
        self.config_tester = ConfigTester(self, config_class=AVCANetConfig, has_text_modality=False, **TINY)

    def test_config(self):
        self.config_tester.run_common_tests()

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        # the mixin adds labels only for classes in transformers' own Auto mappings; ours is remote code
        inputs_dict = copy.deepcopy(inputs_dict)
        if return_labels and model_class is AVCANetForVideoClassification:
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs_dict

    def test_training(self):
        # the base model has no loss: transformers leaves base models out through its MODEL_MAPPING_NAMES, which
        # remote-code classes are not in
        with patch.object(self, "all_model_classes", (AVCANetForVideoClassification,)):
            super().test_training()

    def check_training_gradient_checkpointing(self, gradient_checkpointing_kwargs=None):
        # as test_training: only the class with a loss trains
        with patch.object(self, "all_model_classes", (AVCANetForVideoClassification,)):
            super().check_training_gradient_checkpointing(gradient_checkpointing_kwargs)

    def test_model_get_set_embeddings(self):
        # as transformers' video and image models (VideoMAE, ViT): the input embedding is the patch projection, not an
        # nn.Embedding, and there are no output embeddings
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            embedding = model.get_input_embeddings()
            self.assertIs(embedding, model.base_model.visual_branch.encoder.backbone.patch_embed.proj)
            self.assertIsInstance(embedding, nn.Conv3d)
            replacement = nn.Identity()
            model.set_input_embeddings(replacement)
            self.assertIs(model.get_input_embeddings(), replacement)
            self.assertIsNone(model.get_output_embeddings())

    def test_hidden_states_output(self):
        # two streams, as transformers' two-tower models (CLAP, CLIP) test their towers: each modality has its own
        # hidden states, `audio_hidden_states` and `visual_hidden_states`, each (batch, num_segments, hidden_size)
        def check(inputs, config, model_class):
            model = model_class(copy.deepcopy(config)).eval()
            with torch.no_grad():
                outputs = model(**self._prepare_for_class(inputs, model_class))
            for states in (outputs.audio_hidden_states, outputs.visual_hidden_states):
                self.assertEqual(len(states), self.model_tester.expected_num_hidden_layers)
                for state in states:
                    self.assertEqual(
                        list(state.shape),
                        [self.model_tester.batch_size, self.model_tester.num_segments, self.model_tester.hidden_size],
                    )

        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config)).eval()
            with torch.no_grad():
                plain = model(**inputs)
            self.assertIsNone(plain.audio_hidden_states)
            self.assertIsNone(plain.visual_hidden_states)
            check({**inputs, "output_hidden_states": True}, config, model_class)
            check(inputs, AVCANetConfig(**{**TINY, "output_hidden_states": True}), model_class)

    def test_retain_grad_hidden_states_attentions(self):
        # the same check on each stream's hidden states (see test_hidden_states_output); no attentions are returned
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        config.output_hidden_states = True
        model = AVCANetForVideoClassification(config)
        outputs = model(**inputs)
        audio_state, visual_state = outputs.audio_hidden_states[0], outputs.visual_hidden_states[0]
        audio_state.retain_grad()
        visual_state.retain_grad()
        outputs[0].flatten()[0].backward(retain_graph=True)
        self.assertIsNotNone(audio_state.grad)
        self.assertIsNotNone(visual_state.grad)

    def test_model_is_small(self):
        # The audio branch is torchvision's ResNet, whose stage widths (64 to 512 channels) are fixed: at its smallest
        # depth (one BasicBlock per stage, the test geometry) it alone has ~4.9M parameters. Re-implementing ResNet
        # to narrow it is not worth it; everything else must stay under the common tests' 1M.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        self.assertEqual(config.audio_resnet_layers, [1, 1, 1, 1])
        for model_class in self.all_model_classes:
            model = model_class(copy.deepcopy(config))
            resnet = model.base_model.audio_branch.backbone
            rest = model.num_parameters() - sum(parameter.numel() for parameter in resnet.parameters())
            self.assertLess(rest, 1_000_000)


def test_a_failed_sdist_download_fails_with_the_command_to_run(tmp_path, monkeypatch):
    import transformers_common

    monkeypatch.setattr(transformers_common, "VERSION", "0.0.0")  # no such release, and no index to ask
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(RuntimeError) as raised:
        transformers_common._fetch_sdist(tmp_path)
    message = str(raised.value)
    assert "Could not download the transformers 0.0.0 source distribution" in message
    assert "pip download transformers==0.0.0 --no-deps --no-binary :all:" in message
    assert "transformers-0.0.0.tar.gz" in message
