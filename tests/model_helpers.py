"""Small Keras models shared by the tests."""

import keras


def dense_mlp(input_dim, hidden, num_classes=10):
    """`input_dim`-hidden...-`num_classes` ReLU MLP with a softmax output."""
    return keras.Sequential(
        [keras.Input((input_dim,))]
        + [keras.layers.Dense(units, activation="relu") for units in hidden]
        + [keras.layers.Dense(num_classes, activation="softmax")]
    )
