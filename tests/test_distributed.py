"""`CondCompModel.fit` under tf.distribute matches single-device training.

Logical CPU devices must be configured before TensorFlow initializes and
`MultiWorkerMirroredStrategy` needs one process per worker, so the runs
happen in fresh Python processes: this file doubles as the worker script
(`python tests/test_distributed.py local|multiworker OUT_DIR`). One `local`
process (4 logical CPU devices) runs single-device, 2- and 4-replica
MirroredStrategy training; the slow test adds two MultiWorkerMirroredStrategy
workers talking over loopback gRPC.

Gate sampling is made a deterministic function of each example for these
comparisons (`hashed_policy_call`): with real sampling each replica draws
from its own seed stream (`keras_condcomp.replicas.uniform_noise`), so a
2-replica run and a 1-device run sample different gates and cannot be
compared step by step. The real sampler is tested separately: the replicas'
masks differ, their on-frequency matches sigma, and a 2-replica run on
digits reaches the single-device accuracy.
With example-determined gates, the only differences left are the order of
floating-point sums, so weights, optimizer slots, the baseline and the logged
gate statistics must agree to float tolerance; per-replica baselines, or
regularizers computed on each replica's shard, would not.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 16
NUM_EXAMPLES = 64  # 4 steps an epoch
EPOCHS = 2
METRICS = ("loss", "policy_loss", "baseline", "flop_fraction", "g1_active", "g2_active")


# --------------------------------------------------------------------------
# Worker side (runs in a subprocess).


def hashed_policy_call(self, inputs, training=None, training_blocks=None):
    """`BernoulliBlockPolicy.call` with noise fixed by each example's input.

    `u = frac(<x, v_j> * 3.7 + 0.618 j)` is the same whichever replica or
    batch position the example lands on; slopes are small so float rounding
    differences between devices cannot flip a gate in practice.
    """
    from keras import ops

    from keras_condcomp.policy import bernoulli_log_prob

    logits = self.logits(inputs)
    sigma = ops.sigmoid(logits)
    if not training:
        mask = ops.cast(sigma > self.threshold, sigma.dtype)
        return mask, sigma, bernoulli_log_prob(logits, mask)
    features = inputs.shape[-1]
    rng = np.random.default_rng(1000 * features + self.num_blocks)
    v = ops.convert_to_tensor(rng.uniform(-1, 1, (features, self.num_blocks)).astype("float32"))
    offsets = ops.convert_to_tensor(0.618 * np.arange(self.num_blocks, dtype="float32"))
    z = ops.sum(ops.expand_dims(ops.stop_gradient(inputs), -1) * v, axis=1) * 3.7 + offsets
    noise = z - ops.floor(z)
    mask = ops.cast(noise < sigma, sigma.dtype)
    return mask, sigma, bernoulli_log_prob(logits, mask)


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_EXAMPLES, 10)).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32"))
    return x, y


def build_model():
    import keras

    from keras_condcomp import CondCompModel, GatedDense

    keras.utils.set_random_seed(0)
    network = keras.Sequential(
        [
            keras.Input((10,)),
            GatedDense(16, num_blocks=4, activation="relu", name="g1"),
            GatedDense(16, num_blocks=4, activation="relu", name="g2"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model = CondCompModel(network, baseline_decay=0.5, estimator="reinforce")
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    model.build((None, 10))
    return model


def dump_state(model, history, path):
    import keras

    arrays = {}
    for i, v in enumerate(model.variables):
        if "seed_generator" not in v.path:
            arrays[f"var{i:03d}"] = keras.ops.convert_to_numpy(v)
    for i, v in enumerate(model.optimizer.variables):
        arrays[f"opt{i:03d}"] = keras.ops.convert_to_numpy(v)
    for name in METRICS:
        arrays[f"history/{name}"] = np.asarray(history.history[name])
    # Per-replica copies of the baseline variables must not drift apart.
    for name in ("baseline_ema", "baseline_updates"):
        value = getattr(model, name).value
        copies = getattr(value, "values", (value,))
        arrays[f"copies/{name}"] = np.asarray([np.asarray(c) for c in copies])
    np.savez(path, **arrays)


LOCAL_RUNS = {
    # name: (replicas, deterministic gates). One process per group: two
    # MirroredStrategy instances over different device sets cannot share a
    # process (their collective group keys collide).
    "single": (1, True),
    "mirrored2": (2, True),
    "mirrored2_sampled": (2, False),
    "mirrored4": (4, True),
}
LOCAL_GROUPS = (("single", "mirrored2", "mirrored2_sampled"), ("mirrored4",))
SAMPLING_P = 0.3      # sigma of every block in the sampling probe
SAMPLING_CALLS = 40   # policy calls per replica in the probe
SAMPLING_BATCH = 32   # examples per replica per call


def probe_sampling(strategy, out):
    """Masks that each of 2 replicas samples for identical inputs and sigma = SAMPLING_P."""
    import keras
    import tensorflow as tf

    from keras_condcomp.policy import BernoulliBlockPolicy

    with strategy.scope():
        policy = BernoulliBlockPolicy(
            8, kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(np.log(SAMPLING_P / (1 - SAMPLING_P))),
            seed=5)
        policy.build((None, 4))
    x = tf.ones((SAMPLING_BATCH, 4))

    @tf.function
    def step():
        return strategy.run(lambda: policy(x, training=True)[0])

    masks = [[np.asarray(m) for m in strategy.experimental_local_results(step())]
             for _ in range(SAMPLING_CALLS)]
    np.save(out, np.asarray(masks).transpose(1, 0, 2, 3))  # [replica, call, batch, block]


def train_digits(strategy, out):
    """A small real problem with the real sampler: test accuracy after 15 epochs."""
    import keras
    from sklearn.datasets import load_digits

    from keras_condcomp import CondCompModel, GatedDense, GatingScheduler, linear_schedule

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target
    keras.utils.set_random_seed(0)
    with strategy.scope():
        network = keras.Sequential([
            keras.Input((64,)),
            GatedDense(128, num_blocks=8, activation="relu", tau=0.5, name="g1", seed=1),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model = CondCompModel(network, estimator="reinforce")
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], batch_size=64, epochs=15, verbose=0,
              callbacks=[GatingScheduler(tau=linear_schedule(1.0, 0.5, 5))])
    accuracy = model.evaluate(x[1400:], y[1400:], verbose=0, return_dict=True)["accuracy"]
    with open(out, "w") as f:
        json.dump({"accuracy": float(accuracy), "replicas": strategy.num_replicas_in_sync}, f)


def train(strategy, init_weights, out, deterministic_gates):
    from keras_condcomp.policy import BernoulliBlockPolicy

    original_call = BernoulliBlockPolicy.call
    if deterministic_gates:
        BernoulliBlockPolicy.call = hashed_policy_call
    try:
        with strategy.scope():
            model = build_model()
        model.load_weights(init_weights)
        x, y = make_data()
        history = model.fit(
            x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0
        )
    finally:
        BernoulliBlockPolicy.call = original_call
    info = {"replicas": int(strategy.num_replicas_in_sync)}
    if "TF_CONFIG" in os.environ:
        info["task"] = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    dump_state(model, history, out)
    with open(out + ".json", "w") as f:
        json.dump(info, f)


def worker(mode, out_dir, names=""):
    """`local`: the runs `names` (comma-separated keys of LOCAL_RUNS) on 4
    logical CPU devices; `multiworker`: this task's MWMS run. Every process
    writes the same seeded initial weights and starts from them."""
    import tensorflow as tf

    if mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before any other op
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        init_weights = os.path.join(out_dir, f"init{index}.weights.h5")
        build_model().save_weights(init_weights)
        train(strategy, init_weights, os.path.join(out_dir, f"worker{index}.npz"), True)
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 4
    )
    names = names.split(",")
    init_weights = os.path.join(out_dir, f"init_{names[0]}.weights.h5")
    build_model().save_weights(init_weights)
    for name in names:
        replicas, deterministic = LOCAL_RUNS[name]
        if replicas == 1:
            strategy = tf.distribute.get_strategy()
        else:
            strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
        train(strategy, init_weights, os.path.join(out_dir, name + ".npz"), deterministic)
        if name == "mirrored2_sampled":
            probe_sampling(strategy, os.path.join(out_dir, "sampling_probe.npy"))
            train_digits(strategy, os.path.join(out_dir, "digits_mirrored2.json"))
        if name == "single":
            train_digits(strategy, os.path.join(out_dir, "digits_single.json"))


# --------------------------------------------------------------------------
# Test side.


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "tensorflow"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.pop("TF_CONFIG", None)
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy"):
        env.pop(key, None)  # gRPC between workers must stay on loopback
    env["no_proxy"] = env["NO_PROXY"] = "localhost,127.0.0.1"
    env.update(extra)
    return env


def _command(mode, out_dir, *args):
    return [sys.executable, os.path.abspath(__file__), mode, str(out_dir), *args]


def run_processes(commands, timeout=300):
    """Runs `(command, env)` pairs in parallel; returns their outputs, or fails."""
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        for command, env in commands
    ]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-6000:]
    return logs


def load(path):
    with np.load(str(path)) as data:
        state = dict(data)
    with open(str(path) + ".json") as f:
        state["info"] = json.load(f)
    return state


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Init weights and the single-device and MirroredStrategy runs (one process)."""
    out_dir = tmp_path_factory.mktemp("distributed")
    run_processes([(_command("local", out_dir, ",".join(group)), _env())
                   for group in LOCAL_GROUPS])
    states = {name: load(out_dir / (name + ".npz")) for name in LOCAL_RUNS}
    states["dir"] = out_dir
    return states


def assert_matches(actual, expected, rtol=2e-4, atol=2e-5):
    keys = sorted(k for k in expected if k.startswith(("var", "opt", "history/")))
    assert keys == sorted(k for k in actual if k.startswith(("var", "opt", "history/")))
    for key in keys:
        np.testing.assert_allclose(actual[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


def assert_no_replica_drift(state):
    for name in ("baseline_ema", "baseline_updates"):
        copies = state[f"copies/{name}"]
        assert len(copies) == state["info"]["replicas"] or state["info"].get("task") is not None
        np.testing.assert_array_equal(copies, np.broadcast_to(copies[0], copies.shape), name)


def test_single_device_run_learns_something(runs):
    # Guards the comparisons below against comparing two runs that do nothing.
    single_device = runs["single"]
    assert single_device["info"]["replicas"] == 1
    assert single_device["copies/baseline_updates"][0] == EPOCHS * NUM_EXAMPLES / GLOBAL_BATCH
    loss = single_device["history/loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    active = single_device["history/g1_active"]
    assert 0.0 < active[0] < 1.0  # gates really switch, per example


@pytest.mark.parametrize("replicas", [2, 4])
def test_mirrored_strategy_matches_single_device(replicas, runs):
    state = runs[f"mirrored{replicas}"]
    assert state["info"]["replicas"] == replicas
    assert_no_replica_drift(state)
    assert_matches(state, runs["single"])


def test_mirrored_strategy_trains_with_sampled_gates(runs):
    # The real SeedGenerator sampling under MirroredStrategy: runs and keeps
    # the replicas' baselines identical.
    state = runs["mirrored2_sampled"]
    assert_no_replica_drift(state)
    assert state["copies/baseline_updates"][0] == EPOCHS * NUM_EXAMPLES / GLOBAL_BATCH
    assert np.all(np.isfinite(state["history/loss"]))


def test_replicas_sample_independent_masks_with_the_right_frequency(runs):
    masks = np.load(runs["dir"] / "sampling_probe.npy")  # [replica, call, batch, block]
    assert masks.shape == (2, SAMPLING_CALLS, SAMPLING_BATCH, 8)
    # Same inputs, same sigma: with one shared stream the replicas' masks were equal.
    differ = np.mean(masks[0] != masks[1])
    expected = 2 * SAMPLING_P * (1 - SAMPLING_P)  # P(two independent draws differ)
    n = masks[0].size
    assert abs(differ - expected) < 5 * np.sqrt(expected * (1 - expected) / n), differ
    for replica in range(2):
        frequency = masks[replica].mean()
        # 5 binomial standard deviations of the mean of n draws.
        assert abs(frequency - SAMPLING_P) < 5 * np.sqrt(SAMPLING_P * (1 - SAMPLING_P) / n)
    # Successive calls use new noise too.
    assert np.mean(masks[0, 0] != masks[0, 1]) > 0.2


def test_two_replicas_with_real_sampling_reach_single_device_accuracy(runs):
    single = json.loads((runs["dir"] / "digits_single.json").read_text())
    mirrored = json.loads((runs["dir"] / "digits_mirrored2.json").read_text())
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert single["accuracy"] > 0.85, single  # it learns (chance: 0.1)
    assert mirrored["accuracy"] > single["accuracy"] - 0.03, (mirrored, single)


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_matches_single_device(runs):
    # Two worker processes on loopback ports, one CPU replica each.
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    commands = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        commands.append((_command("multiworker", runs["dir"]), _env(TF_CONFIG=tf_config)))
    run_processes(commands, timeout=240)
    states = [load(runs["dir"] / f"worker{index}.npz") for index in range(2)]
    for state in states:
        assert state["info"]["replicas"] == 2
        assert_no_replica_drift(state)
        assert_matches(state, runs["single"])


if __name__ == "__main__":
    worker(*sys.argv[1:])
