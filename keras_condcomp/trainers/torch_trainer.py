"""`CondCompModel`'s steps on the PyTorch backend: autograd, variables updated in place."""

import keras
import torch


class TorchTrainStep:
    """Train and test steps of `CondCompModel` for `keras/src/backend/torch/trainer.py`."""

    def train_step(self, data):
        x, y, sample_weight = self._repeat_batch(*keras.utils.unpack_x_y_sample_weight(data))
        self.zero_grad()
        y_pred, loss, mean_cost = self._training_loss(x, y, sample_weight)
        variables = self.trainable_variables
        if variables:
            loss.backward()
        # A variable the loss does not reach has no gradient (None), which the
        # optimizers skip, as with TensorFlow's tape.
        gradients = [v.value.grad for v in variables]
        with torch.no_grad():
            self._apply_gradients(gradients, variables)
            self._update_baseline(mean_cost)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self._forward(x, y, sample_weight, training=False)[0]
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
