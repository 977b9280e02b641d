"""Host snapshots on their own: what is copied, what is shared, and that the
deferred copy always lands before the optimizer changes anything."""

import threading
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerControl, TrainerState

from tuneyard.training.snapshot import BeforeOptimizerStep, HostSlot

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")


def _trainer(model):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = SimpleNamespace(
        model=model, optimizer=optimizer, lr_scheduler=scheduler,
        accelerator=SimpleNamespace(scaler=None), state=TrainerState(global_step=1, epoch=0.5),
        control=TrainerControl(), callback_handler=SimpleNamespace(callbacks=[]),
        store_flos=lambda: None,
    )
    _train_step(trainer)  # AdamW state exists after a first step
    return trainer


def _train_step(trainer):
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    trainer.model(input_ids=ids, labels=ids).loss.backward()
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.optimizer.zero_grad()


@pytest.fixture
def lm(tiny_lm):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_lm)


def _values(snapshot):
    weights = {k: v.clone() for k, v in snapshot.model.state_dict().items()}
    moments = {i: s["exp_avg"].clone() for i, s in snapshot.optimizer["state"].items()}
    return weights, moments


def _live(trainer):
    weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    moments = {i: s["exp_avg"].clone()
               for i, s in trainer.optimizer.state_dict()["state"].items()}
    return weights, moments


def _equal(a, b):
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and all(
        torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("writer_first", [False, True])
def test_the_deferred_copy_lands_before_the_next_optimizer_step(lm, writer_first):
    trainer = _trainer(lm)
    before = _live(trainer)
    slot, hook = HostSlot(), BeforeOptimizerStep()
    snapshot = slot.capture(trainer)
    assert not snapshot.deferred.done  # weights and moments are not copied yet
    waited = []
    hook.add(trainer.optimizer, snapshot.deferred, waited.append)
    if writer_first:  # the writer's thread gets to it before the loop's next step
        thread = threading.Thread(target=snapshot.wait)
        thread.start()
        thread.join()
    _train_step(trainer)  # the pre-hook copies (or finds it copied) first
    assert snapshot.deferred.done and len(waited) == 1
    snapshot.wait()
    assert not _equal(_live(trainer), before)  # the step changed the live state...
    assert _equal(_values(snapshot), before)  # ...and not the snapshot
    _train_step(trainer)  # the hook has nothing left to do
    assert len(waited) == 1
    hook.close()
    assert snapshot.step == 1 and snapshot.epoch == 0.5


def test_undeferred_capture_copies_everything_at_once(lm):
    trainer = _trainer(lm)
    before = _live(trainer)
    snapshot = HostSlot().capture(trainer, defer=False)
    assert snapshot.deferred.done
    _train_step(trainer)
    assert _equal(_values(snapshot), before)


def test_tied_weights_stay_tied_and_slots_reuse_their_buffers(lm):
    assert lm.lm_head.weight is lm.model.embed_tokens.weight
    trainer = _trainer(lm)
    slot = HostSlot()
    first = slot.capture(trainer, defer=False)
    shadow = first.model
    assert shadow.lm_head.weight is shadow.model.embed_tokens.weight  # copied once, still tied
    assert shadow.lm_head.weight.data_ptr() != lm.lm_head.weight.data_ptr()
    weights = sum(p.numel() * p.element_size() for p in lm.parameters())
    assert first.nbytes >= 3 * weights  # weights + AdamW's two moments
    _train_step(trainer)
    second = slot.capture(trainer, defer=False)
    assert second.model is shadow  # the same host buffers, refilled
    assert (second.optimizer["state"][0]["exp_avg"].data_ptr()
            == first.optimizer["state"][0]["exp_avg"].data_ptr())


def test_lora_shares_the_frozen_base_and_copies_the_adapter(tiny_lm):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm),
                           LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear"))
    trainer = _trainer(model)
    snapshot = HostSlot().capture(trainer, defer=False)
    live = dict(model.named_parameters())
    for name, param in snapshot.model.named_parameters():
        if live[name].requires_grad:
            assert param.data_ptr() != live[name].data_ptr(), name
        else:
            assert param is live[name], name  # the base weights are not copied
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    assert snapshot.nbytes < frozen
