"""The training loop: one custom loop (`strategy.run`) for every tf.distribute strategy (Sec. 2.5).

"standard SGD with momentum set to 0.9 in all cases, with synchronous parallelization across 32 GPUs".
Keras 3 `model.fit` crashes under `MultiWorkerMirroredStrategy` (keras issue 20585), so a single
`tf.function` step run by `strategy.run` serves the default strategy, `MirroredStrategy` (GPUs or logical
CPU devices) and `MultiWorkerMirroredStrategy` (TF_CONFIG).

Loss contract (per replica, summed over replicas by the optimizer's gradient all-reduce):
  * cross-entropy from float32 logits (mixed precision computes the trunk in bf16/f16; every registered model
    builds its `Logits*` head in float32, and the loss casts to float32 in any case);
  * logits of rank 3 [B, T, C] (per-time outputs, e.g. the ConvNet+LSTM baseline at training, Sec. 2.1):
    the cross-entropy is averaged over the T time steps, each step labelled with the clip label;
    accuracy uses the last step's logits (Sec. 2.1: "we consider only the output on the last frame");
  * per-example losses summed and divided by the *global* batch (`tf.nn.compute_average_loss`);
  * weight decay as L2 on conv kernels: `weight_decay * sum(w**2) / 2` (`tf.nn.l2_loss`, the slim
    `l2_regularizer` convention, gradient `weight_decay * w`), divided by the replica count so the summed
    gradient carries it once.

Checkpoints (every `checkpoint_every` steps, `tf.train.CheckpointManager` in model_dir) hold the model, the
optimizer (momentum slots, LR, loss scale), the step, the plateau controller and the dropout RNG state.
The data position is the step: a restart rebuilds the input pipeline and skips `step` per-replica batches,
so in deterministic mode a killed and restarted run ends with the weights of an uninterrupted one.
"""

import dataclasses
import json
import math
import os
import shutil
import time
from typing import Callable, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from data_pipelines.preprocessing import to_model_range
from i3d_tf import registry
from i3d_tf import scoring
from i3d_tf.checkpoints import restore as restore_lib
from data_pipelines.io_utils import save_figure
from i3d_tf.training import schedules
from i3d_tf.training import transfer as transfer_lib
from i3d_tf.training.config import TrainConfig

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]
ModelFn = Callable[[int], keras.Model]
HISTORY_NAME = 'history.jsonl'
CURVES_NAME = 'training_curves.png'


# ----------------------------------------------------------------------------------------------- strategy


def configure_logical_cpus(n: int):
  """Splits the CPU into `n` logical devices (for MirroredStrategy tests); must run before any TF op."""
  cpu = tf.config.list_physical_devices('CPU')[0]
  existing = tf.config.get_logical_device_configuration(cpu)
  if existing is not None and len(existing) == n:
    return
  try:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
  except RuntimeError as e:
    raise RuntimeError(f'Cannot split the CPU into {n} devices after TensorFlow started: configure it '
                       f'before any op (num_logical_devices={n}).') from e


def make_strategy(name: str, num_logical_devices: int = 0) -> tf.distribute.Strategy:
  """'default' | 'mirrored' (all GPUs, else the logical CPUs) | 'multi_worker' (TF_CONFIG).

  Args:
    name: one of `config.STRATEGIES`.
    num_logical_devices: mirrored without a GPU: first split the CPU into this many devices (0: no split).

  Raises:
    ValueError: an unknown name, or multi_worker without TF_CONFIG.
    RuntimeError: the CPU cannot be split once TensorFlow has started.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    if num_logical_devices and not tf.config.list_physical_devices('GPU'):
      configure_logical_cpus(num_logical_devices)
    gpus = tf.config.list_logical_devices('GPU')
    devices = [d.name for d in (gpus or tf.config.list_logical_devices('CPU'))]
    return tf.distribute.MirroredStrategy(devices)
  if name == 'multi_worker':
    if 'TF_CONFIG' not in os.environ:
      raise ValueError('strategy=multi_worker needs TF_CONFIG (see docs/training.md).')
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f'Unknown strategy. Received: strategy={name}')


def _task():
  cfg = json.loads(os.environ.get('TF_CONFIG', '{}'))
  task = cfg.get('task', {})
  return task.get('type'), task.get('index', 0), 'chief' in cfg.get('cluster', {})


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes summaries, configs and the real checkpoints: always under a single-worker
  `strategy`; under MultiWorkerMirroredStrategy the chief of TF_CONFIG, else worker 0."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, index, has_chief = _task()
  return task_type == 'chief' or (not has_chief and task_type == 'worker' and index == 0)


# ----------------------------------------------------------------------------------------------- losses


def per_example_loss(labels, logits, label_smoothing: float = 0.0):
  """Cross-entropy per example, for every registered model's output; the one training loss.

  Args:
    labels: int class ids [B].
    logits: [B, C], or per-time-step [B, T, C] (ConvNet+LSTM: "cross-entropy losses on the outputs at all
      time steps", Sec. 2.1): the loss of every step, averaged over time.  Cast to float32 (mixed precision).
    label_smoothing: in [0, 1); 0 is the paper's plain cross-entropy.

  Returns:
    [B] float32 losses; reduce (and divide by the replica count) in the trainer.

  Raises:
    ValueError: logits of another rank.
    tf.errors.InvalidArgumentError (when run): a label outside [0, C) (one-hot would make its loss 0 silently).
  """
  logits = tf.cast(logits, tf.float32)
  if logits.shape.rank not in (2, 3):
    raise ValueError(f'logits must be [B, C] or [B, T, C]. Received: logits.shape={logits.shape}')
  labels = tf.cast(labels, tf.int32)
  depth = tf.shape(logits)[-1]
  checks = [tf.debugging.assert_non_negative(labels, message='a label is negative'),
            tf.debugging.assert_less(labels, depth, message='a label is >= the number of classes (the logits\' size): '
                                     'the records have more classes than num_classes')]
  with tf.control_dependencies(checks):
    onehot = tf.one_hot(labels, depth)
  if logits.shape.rank == 3:
    onehot = tf.broadcast_to(onehot[:, None, :], tf.shape(logits))
  losses = keras.losses.categorical_crossentropy(onehot, logits, from_logits=True,
                                                 label_smoothing=label_smoothing)
  return tf.reduce_mean(losses, axis=1) if logits.shape.rank == 3 else losses


def _correct(labels, scores):
  """How many rows of scores [B, C] have their highest score at the label."""
  predictions = tf.argmax(scores, axis=-1, output_type=tf.int32)
  return tf.reduce_sum(tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32))


def conv_kernels(model: keras.Model):
  """The trainable variables of `model` whose path ends in 'kernel' (weight decay applies to these only: no
  biases, no BN offsets): conv kernels, and also the dense kernels (C3D fc6-fc8, classifier FCs, the LSTM's
  input and recurrent kernels)."""
  return [v for v in model.trainable_variables if v.path.endswith('kernel')]


def l2_weight_decay(model: keras.Model, weight_decay: float):
  """L2 penalty of `model`: weight_decay * sum(w**2) / 2 over `conv_kernels(model)` (tf.nn.l2_loss has the
  1/2: gradient = wd * w), float32 scalar; 0.0 when weight_decay is 0 or there is no kernel."""
  kernels = conv_kernels(model)
  if not weight_decay or not kernels:
    return tf.constant(0.0)
  return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(k, tf.float32)) for k in kernels])


def set_bn_momentum(model: keras.Model, momentum: float) -> int:
  """Sets the moving-statistics momentum of every BatchNormalization layer of `model` (nested ones included);
  returns how many.

  The official 0.999 moves the statistics 10% of the way in 100 steps: a few-hundred-step run evaluated in
  inference mode would use near-initial statistics.  Not saved in checkpoints (a training-time choice).
  """
  count = 0
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = float(momentum)
      count += 1
  return count


# ----------------------------------------------------------------------------------------------- summaries


def write_scalar(name: str, value: float, step: int):
  """A TensorBoard scalar; without the tensorboard package, the same record written through tf.summary.write
  with the scalars-plugin metadata TensorBoard's own `scalar` writes.

  Args:
    name: the tag.
    value: written as float32.
    step: the training step.

  Writes to the default `tf.summary` writer; nothing without one.
  """
  from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
  metadata = summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'),
      data_class=summary_pb2.DATA_CLASS_SCALAR)
  tf.summary.write(name, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


# ----------------------------------------------------------------------------------------------- data


def default_dataset_fn(config: TrainConfig, training: bool) -> Optional[Callable]:
  """A `(input_context) -> dataset` factory for config.train_data (`training`) or config.eval_data (None
  when unset).

  'synthetic[:N]' gives `synthetic.learnable_dataset_fn`; anything else `data_pipelines.make_dataset` on the
  shards (training: random clips, repeated; else one pass, whole-video test clips shortened to the training
  clip length so that they batch).

  Raises:
    ValueError: a glob that matches no file, said here (the Trainer makes its readers before anything is
      written) rather than by the reader at the first step, after `train` wrote model_dir.
  """
  pattern = config.train_data if training else config.eval_data
  if not pattern:
    return None
  if pattern.startswith('synthetic'):  # in-memory learnable videos (smoke runs, tests)
    from data_pipelines import synthetic  # pylint: disable=g-import-not-at-top
    from data_pipelines.input_specs import INPUT_SPECS  # pylint: disable=g-import-not-at-top
    modalities = INPUT_SPECS[config.model].modalities if config.model in INPUT_SPECS else ('rgb',)
    return synthetic.learnable_dataset_fn(pattern, modalities, config.num_classes, config.batch_size, training,
                                          config.num_frames, config.crop_size, config.seed)
  if not tf.io.gfile.glob(pattern):
    raise ValueError(f'--{"train_data" if training else "eval_data"}={pattern}: no file matches it (nothing was '
                     'written): check the path and the glob, e.g. <records folder>/<subset>-*.tfrecord')
  import data_pipelines  # pylint: disable=g-import-not-at-top
  num_frames = config.num_frames
  if not training and num_frames is None and registry.input_spec(config.model).test.num_frames is None:
    # Validation loss on clips of the training length, not whole videos (those need batch 1): the
    # whole-video protocol of Sec. 2.5 belongs to the evaluator.
    num_frames = registry.input_spec(config.model).train.num_frames

  def fn(ctx: tf.distribute.InputContext):
    # make_dataset takes the global batch and divides it by the replica count through input_context.
    return data_pipelines.make_dataset(
        pattern, config.model, training, config.batch_size, seed=config.seed,
        deterministic=config.deterministic, crop_size=config.crop_size, num_frames=num_frames,
        repeat=None, input_context=ctx, output_dtype=config.input_dtype)

  return fn


def check_class_count(config: TrainConfig) -> None:
  """Refuses records whose class list (the manifest.json prepare_data writes beside them) is longer than
  `num_classes`: their labels past the classifier would train nothing (the per-step check would stop the run
  at its first such batch; this says so before any work).  `config`'s train_data and eval_data are checked.

  Raises:
    ValueError: one line naming the records, both counts and the flag to change; folders of one glob that
      record different class lists (`data_pipelines.datasets.DatasetError`).
  """
  from data_pipelines import conversion  # pylint: disable=g-import-not-at-top
  for pattern in (config.train_data, config.eval_data):
    if not pattern or pattern.startswith('synthetic'):
      continue
    found = conversion.records_class_list(pattern)  # every folder the glob matches; mixed lists raise
    if found.labels is None:
      continue  # no class list recorded: the per-step label check still applies
    if len(found.labels) > config.num_classes:
      raise ValueError(f'{pattern}: the records have {len(found.labels)} classes ({found.manifests[0]}), more than '
                       f'num_classes={config.num_classes}: pass --num_classes={len(found.labels)}')


def check_labelled(config: TrainConfig) -> None:
  """Refuses train_data or eval_data records that hold videos without a label (label index -1, what
  prepare_data stores for a Kinetics test video or a CSV row without a label): their loss and accuracy have
  no meaning, and the per-step check would stop the run at the first such batch with TensorFlow's 'a label is
  negative'.  This says so before any work, from the per-shard manifests prepare_data writes
  (`data_pipelines.conversion.records_labels`).  Shards without a manifest (records written by other tools) are
  named in one warning line: their labels are checked only as they are read.

  Args:
    config: the run's `TrainConfig`; its train_data and eval_data globs are checked (`synthetic` data is not).

  Raises:
    ValueError: one line naming the records, how many videos have no label, one of them and its shard
      manifest, and what to do instead (`evaluate.py` predicts unlabelled records); or naming a shard manifest
      that exists but is damaged (its labels cannot be checked; convert the subset again).
  """
  from absl import logging  # pylint: disable=g-import-not-at-top
  from data_pipelines import conversion  # pylint: disable=g-import-not-at-top
  for flag, pattern in (('train_data', config.train_data), ('eval_data', config.eval_data)):
    if not pattern or pattern.startswith('synthetic'):
      continue
    found = conversion.records_labels(pattern)
    if found.damaged:
      raise ValueError(f'--{flag}={pattern}: the shard manifest {found.damaged[0]} is damaged'
                       f'{f" (and {len(found.damaged) - 1} more)" if len(found.damaged) > 1 else ""}, so the '
                       'labels of its shard cannot be checked: convert that subset again (prepare_data '
                       '--overwrite)')
    if found.unrecorded:
      logging.warning('--%s=%s: %d file(s) have no prepare_data shard manifest (e.g. %s): their labels are '
                      'checked only as they are read (a label -1 there stops the run at that batch)', flag,
                      pattern, len(found.unrecorded), found.unrecorded[0])
    if found.unlabelled:
      raise ValueError(f'--{flag}={pattern}: {len(found.unlabelled)} of the {found.videos} videos its shard '
                       f'manifests list have no label (label -1, e.g. {found.unlabelled[0]}, listed in '
                       f'{found.unlabelled_manifests[0]}), so their loss and accuracy cannot be computed: train and '
                       'validate on labelled records (a split with labels), and predict these with '
                       'experiments/evaluate.py, which writes their predictions and leaves them out of the metrics')


def fold_views(inputs):
  """[B, V, T, H, W, C] test views (dict values alike) -> ([B * V, T, H, W, C], V); rank 5 -> (inputs, None)."""
  first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
  if first.shape.rank != 6:
    return inputs, None
  views = tf.shape(first)[1]

  def fold(x):
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))

  return (tf.nest.map_structure(fold, inputs), views)


# ----------------------------------------------------------------------------------------------- trainer


class Trainer:
  """Builds the model, optimizer and checkpoint under a strategy, then runs the loop.

  Args:
    config: a `TrainConfig` (validated here).
    model_fn: `num_classes -> keras.Model`; default the registry's `config.model`.
    train_dataset_fn, eval_dataset_fn: `(tf.distribute.InputContext) -> tf.data.Dataset` of per-replica
      batches `(inputs, labels)`; default `data_pipelines.make_dataset` on config.train_data/eval_data.
    strategy: an existing strategy (default: `make_strategy(config.strategy)`).
    after_step: called with the step number after each step's logging, evaluation and checkpoint.
  """

  def __init__(self, config: TrainConfig, model_fn: Optional[ModelFn] = None,
               train_dataset_fn: Optional[DatasetFn] = None, eval_dataset_fn: Optional[DatasetFn] = None,
               strategy: Optional[tf.distribute.Strategy] = None,
               after_step: Optional[Callable[[int], None]] = None):
    self.config = config.validate()
    config.check_resume()  # before anything is written into an existing model_dir
    check_class_count(config)  # records with more classes than the classifier: refused before any step
    check_labelled(config)  # records with videos without a label (-1): refused before any step
    self.after_step = after_step
    # The strategy first: MultiWorkerMirroredStrategy and logical devices must precede other ops.
    self.strategy = strategy or make_strategy(config.strategy, config.num_logical_devices)
    self.chief = is_chief(self.strategy)
    self.replicas = self.strategy.num_replicas_in_sync
    if config.batch_size % self.replicas:
      raise ValueError(f'The global batch {config.batch_size} does not split over {self.replicas} replicas. '
                       f'Received: batch_size={config.batch_size}')
    if config.deterministic:
      tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    self.model_fn = model_fn or self._registry_model_fn
    self.train_dataset_fn = train_dataset_fn or default_dataset_fn(config, True)
    self.eval_dataset_fn = eval_dataset_fn or default_dataset_fn(config, False)
    if self.train_dataset_fn is None:
      raise ValueError('No training data: set train_data or pass train_dataset_fn.')
    if config.lr_schedule == 'plateau' and self.eval_dataset_fn is None:
      raise ValueError('lr_schedule=plateau needs eval data.')

    previous_policy = keras.mixed_precision.global_policy()
    if config.mixed_precision != 'none':
      keras.mixed_precision.set_global_policy(f'mixed_{config.mixed_precision}')
    try:
      with self.strategy.scope():
        self.model = self.model_fn(config.num_classes)
        self.init_report = transfer_lib.initialize(self.model, config.init, config.model, config.transfer,
                                                   build_fn=self.model_fn)
        if config.bn_momentum is not None:
          set_bn_momentum(self.model, config.bn_momentum)
        if config.transfer == 'fixed':
          transfer_lib.freeze_backbone(self.model)
        optimizer = keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
        if config.mixed_precision == 'float16':
          optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.optimizer = optimizer
        self.optimizer.build(self.model.trainable_variables)
    finally:
      keras.mixed_precision.set_global_policy(previous_policy)

    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step')
    self.plateau = schedules.PlateauController(config.plateau_patience, config.lr_decay,
                                               config.plateau_min_delta)
    self.lr = schedules.LearningRate(config.lr_schedule, config.learning_rate, config.lr_boundaries,
                                     config.lr_decay, self.plateau)
    # Dropout's RNG state is not tracked by Keras objects; save it so resumed runs draw the same masks.
    rng = {f'rng_{i}': v.value for i, v in enumerate(
        v for v in self.model.variables if 'seed_generator_state' in v.path)}
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                          plateau=self.plateau, **rng)
    self.manager = None
    self._ckpt_dir = None
    if config.model_dir:
      self._ckpt_dir = config.model_dir if self.chief else os.path.join(
          config.model_dir, f'.worker_tmp_{_task()[1]}')
      self.manager = tf.train.CheckpointManager(self.checkpoint, self._ckpt_dir, config.max_checkpoints,
                                                step_counter=self.step)
    self._train_step = None
    self._eval_step = None
    self.history = []
    self.dtypes = {}

  def _registry_model_fn(self, num_classes):
    kwargs = restore_lib.config_build_kwargs(dataclasses.asdict(self.config))
    return registry.build_model(self.config.model, num_classes, **kwargs)

  # -------------------------------------------------------------------------------------------- steps

  def _make_train_step(self):
    model, optimizer, config = self.model, self.optimizer, self.config
    global_batch = config.batch_size
    replicas = self.replicas

    def step_fn(inputs, labels):
      inputs = to_model_range(inputs)  # uint8 levels from the pipeline -> [-1, 1], here on the device
      with tf.GradientTape() as tape:
        logits = model(inputs, training=True)
        losses = per_example_loss(labels, logits)
        loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
        reg = l2_weight_decay(model, config.weight_decay)
        total = loss + reg / replicas
        scaled = optimizer.scale_loss(total)
      tvars = model.trainable_variables
      grads = tape.gradient(scaled, tvars)
      optimizer.apply_gradients(zip(grads, tvars))
      correct = _correct(labels, scoring.last_step(tf.cast(logits, tf.float32)))
      # Trace-time record: the model's logits dtype and the dtype the loss is computed in.
      self.dtypes = {'model_logits': logits.dtype.name, 'loss': losses.dtype.name}
      return {'loss_sum': tf.reduce_sum(losses), 'correct': correct,
              'count': tf.cast(tf.shape(labels)[0], tf.float32), 'reg': reg / replicas}

    replica_fn = step_fn
    if config.jit_compile:  # XLA on the replica step (the iterator's get_next cannot be compiled)
      replica_fn = tf.function(step_fn, jit_compile=True)

    @tf.function
    def train_step(iterator):
      inputs, labels = next(iterator)
      out = self.strategy.run(replica_fn, args=(inputs, labels))
      return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in out.items()}

    return train_step

  def _make_eval_step(self):
    model = self.model

    def step_fn(inputs, labels):
      inputs, views = fold_views(to_model_range(inputs))
      logits = model(inputs, training=False)
      scores = scoring.last_step(tf.cast(logits, tf.float32))  # per-step outputs: the last step (Sec. 2.1)
      if views is None:
        losses = per_example_loss(labels, logits)  # as in training
      else:  # several test views per clip: the mean of their softmax, as evaluation.py (`scoring`, Sec. 2.5)
        scores = scoring.average_views(tf.reshape(scores, [-1, views, scores.shape[-1]]))
        picked = tf.gather(scores, tf.cast(labels, tf.int32), axis=1, batch_dims=1)
        losses = -tf.math.log(picked + scoring.LOG_EPSILON)  # the negative log of the averaged prediction
      correct = _correct(labels, scores)
      return {'loss_sum': tf.reduce_sum(losses), 'correct': correct,
              'count': tf.cast(tf.shape(labels)[0], tf.float32)}

    @tf.function
    def eval_step(inputs, labels):
      out = self.strategy.run(step_fn, args=(inputs, labels))
      return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in out.items()}

    return eval_step

  def evaluate(self) -> Dict[str, float]:
    """Loss and accuracy over the eval data (or its first `eval_steps` batches), summed over replicas."""
    if self.eval_dataset_fn is None:
      return {}
    if self._eval_step is None:
      self._eval_step = self._make_eval_step()
    steps = self.config.eval_steps

    def fn(ctx):
      ds = self.eval_dataset_fn(ctx)
      return ds.take(steps) if steps else ds

    dataset = self.strategy.distribute_datasets_from_function(fn)
    totals = {'loss_sum': 0.0, 'correct': 0.0, 'count': 0.0}
    for inputs, labels in dataset:
      out = self._eval_step(inputs, labels)
      for k in totals:
        totals[k] += float(out[k])
    n = max(totals['count'], 1.0)
    return {'eval_loss': totals['loss_sum'] / n, 'eval_accuracy': totals['correct'] / n,
            'eval_examples': int(totals['count'])}

  # -------------------------------------------------------------------------------------------- loop

  def restore(self) -> int:
    """Restores the latest checkpoint of model_dir (if any); returns the step to start from."""
    if self.manager is not None and self.manager.latest_checkpoint:
      self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
    return int(self.step.numpy())

  def _save(self):
    if self.manager is None:
      return
    self.manager.save(checkpoint_number=int(self.step.numpy()))
    if not self.chief:  # Every worker saves (collectives); only the chief's copy is kept.
      shutil.rmtree(self._ckpt_dir, ignore_errors=True)
      self.manager = tf.train.CheckpointManager(self.checkpoint, self._ckpt_dir, 1, step_counter=self.step)

  def _log(self, record: Dict, writer):
    record = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in record.items()}
    self.history.append(record)
    if not (self.chief and self.config.model_dir):
      return
    with open(os.path.join(self.config.model_dir, HISTORY_NAME), 'a') as f:
      f.write(json.dumps(record) + '\n')
    if writer is not None:
      with writer.as_default(step=record['step']):
        for k, v in record.items():
          if k not in ('step', 'kind') and isinstance(v, (int, float)):
            write_scalar(k, v, record['step'])
      writer.flush()

  def train(self) -> Dict[str, float]:
    """Runs (or resumes) training to `train_steps`; returns the final metrics."""
    config = self.config
    if self.chief and config.model_dir:
      config.write(config.model_dir)
    start = self.restore()
    writers = (None, None)
    if self.chief and config.model_dir:
      writers = (tf.summary.create_file_writer(os.path.join(config.model_dir, 'train')),
                 tf.summary.create_file_writer(os.path.join(config.model_dir, 'eval')))

    def train_fn(ctx):  # Data position = step: skip the batches consumed before the checkpoint.
      return self.train_dataset_fn(ctx).skip(start)

    iterator = iter(self.strategy.distribute_datasets_from_function(train_fn))
    if self._train_step is None:
      self._train_step = self._make_train_step()
    bar = None
    if config.progress_bar and self.chief:
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      bar = tqdm(total=config.train_steps, initial=start, unit='step', dynamic_ncols=True)
    window = {'loss_sum': 0.0, 'correct': 0.0, 'count': 0.0, 'reg': 0.0, 'steps': 0, 'timed_clips': 0.0}
    final = {}
    t_window = time.time()
    steady_steps, steady_time, first_step = 0, 0.0, True
    t_start = time.time()
    last_eval = {}
    step = start
    while step < config.train_steps:
      lr = self.lr(step)
      self.optimizer.learning_rate.assign(lr)
      t0 = time.time()
      out = self._train_step(iterator)
      out = {k: float(v) for k, v in out.items()}
      dt = time.time() - t0
      if first_step:
        first_step = False
        t_window = time.time()  # the first step includes tracing; throughput excludes it
      else:
        steady_steps, steady_time = steady_steps + 1, steady_time + dt
        window['timed_clips'] += out['count']
      step = int(self.step.assign_add(1).numpy())
      for k in ('loss_sum', 'correct', 'count', 'reg'):
        window[k] += out[k]
      window['steps'] += 1
      if not math.isfinite(out['loss_sum']):
        raise FloatingPointError(f'Non-finite loss at step {step}: {out}')
      if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{out['loss_sum'] / max(out['count'], 1):.4f}", lr=f'{lr:.3g}')
      if step % config.log_every == 0 or step == config.train_steps:
        n = max(window['count'], 1.0)
        elapsed = max(time.time() - t_window, 1e-9)
        final = {'kind': 'train', 'step': step, 'loss': window['loss_sum'] / n,
                 'regularization': window['reg'] / window['steps'],
                 'accuracy': window['correct'] / n, 'learning_rate': lr,
                 # None (JSON null, no TensorBoard point) when the window holds only the first step
                 'clips_per_sec': window['timed_clips'] / elapsed if window['timed_clips'] else None}
        self._log(final, writers[0])
        window = {k: 0.0 for k in window}
        window['steps'] = 0
        t_window = time.time()
      if self.eval_dataset_fn is not None and (step % config.eval_every == 0 or step == config.train_steps):
        last_eval = self.evaluate()
        reduced = False
        if config.lr_schedule == 'plateau':
          reduced = self.plateau.update(last_eval['eval_loss'])
        self._log({'kind': 'eval', 'step': step, 'loss': last_eval['eval_loss'],
                   'accuracy': last_eval['eval_accuracy'], 'lr_reduced': reduced,
                   'learning_rate': self.lr(step)}, writers[1])
      if step % config.checkpoint_every == 0 or step == config.train_steps:
        self._save()
      if self.after_step is not None:
        self.after_step(step)
    if bar is not None:
      bar.close()
    if self.chief and config.model_dir:
      plot_curves(config.model_dir)
    if not self.chief and self._ckpt_dir:
      shutil.rmtree(self._ckpt_dir, ignore_errors=True)
    metrics = {'step': step, 'replicas': self.replicas, 'learning_rate': self.lr(step),
               'elapsed_s': time.time() - t_start,
               'steps_run': step - start,
               'clips_per_sec': (steady_steps * config.batch_size / steady_time) if steady_time else None}
    if final:
      metrics.update(train_loss=final['loss'], train_accuracy=final['accuracy'])
    metrics.update({f'{k}_dtype': v for k, v in self.dtypes.items()})
    if last_eval:
      metrics.update(last_eval)
    return metrics


# ----------------------------------------------------------------------------------------------- outputs


def read_history(model_dir: str):
  """The history records of model_dir, the last record of each (kind, step) kept (resumed runs rewrite)."""
  path = os.path.join(model_dir, HISTORY_NAME)
  if not os.path.isfile(path):
    return []
  records = {}
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          r = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
          continue
        records[(r['kind'], r['step'])] = r
  return sorted(records.values(), key=lambda r: (r['step'], r['kind']))


def plot_curves(model_dir: str) -> Optional[str]:
  """Loss and accuracy against step (train and eval) as model_dir/training_curves.png (atomic write)."""
  records = read_history(model_dir)
  if not records:
    return None
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for kind, style in (('train', '-'), ('eval', 'o--')):
    rs = [r for r in records if r['kind'] == kind]
    if rs:
      steps = [r['step'] for r in rs]
      axes[0].plot(steps, [r['loss'] for r in rs], style, label=kind)
      axes[1].plot(steps, [r['accuracy'] for r in rs], style, label=kind)
  losses = [r['loss'] for r in records if r['loss'] > 0]
  if losses and max(losses) / min(losses) > 100:  # early BN statistics can make eval losses explode
    axes[0].set_yscale('log')
  for ax, name in zip(axes, ('loss', 'accuracy')):
    ax.set_xlabel('step')
    ax.set_ylabel(name)
    ax.legend()
    ax.grid(True, alpha=0.3)
  fig.tight_layout()
  path = save_figure(os.path.join(model_dir, CURVES_NAME), fig, dpi=80)
  plt.close(fig)
  return path


def train(config: TrainConfig, **kwargs) -> Dict[str, float]:
  """Library entry point: `Trainer(config, **kwargs).train()`; returns the final metrics dict.

  kwargs: `model_fn`, `train_dataset_fn`, `eval_dataset_fn`, `strategy`, `after_step` (see `Trainer`).
  """
  return Trainer(config, **kwargs).train()
