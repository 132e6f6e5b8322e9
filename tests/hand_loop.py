"""A trial trained the way MLX's own examples train, as the reference that tuner's engine is
held to: the optimizer built on its schedule (warmup included), stepped eagerly."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from tuner.lr import make_schedule
from tuner.trial import batch_order


def train_by_hand(task, optimizer, schedule, sample, *, steps, batch_size, seed):
    """The model and optimizer after ``steps`` of ``sample``'s settings, with each step's loss
    and learning rate; the same initial weights and batches as a trial with ``seed``."""
    mx.random.seed(seed)
    np.random.seed(seed)
    model = task.model()
    warmup = round(sample.warmup * steps)
    rates = make_schedule(schedule, sample.lr, steps, warmup, sample.schedule_params)
    opt = optimizer.build(rates, **sample.optimizer_params)
    loss_and_grad = nn.value_and_grad(model, task.loss)
    x, y = task.train
    order = batch_order(x.shape[0], steps, batch_size, seed)
    losses, lrs = [], []
    for index in range(steps):
        loss, grads = loss_and_grad(model, x[order[index]], y[order[index]])
        opt.update(model, grads)
        mx.eval(loss, model.state, opt.state)
        losses.append(loss.item())
        lrs.append(opt.learning_rate.item())
    return model, opt, losses, lrs
