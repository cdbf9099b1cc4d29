"""Chapter 02's modules (fasttrain.chapters.ch02_*) and the 16-mixed path of a job: known values, fast, on the CPU."""

import pytest
import torch
from conftest import cpu_config
from fasttrain.chapters import ch02_precision as P
from fasttrain.config import ConfigError, TrainConfig


def test_format_limits_agree_with_torch_finfo():
    rows = {r["name"]: r for r in P.format_table()}
    assert all(rows[n]["finfo_agrees"] for n in ("fp32", "bf16", "fp16"))
    assert rows["fp16"]["max"] == 65504 and rows["fp16"]["smallest_subnormal"] == 2.0**-24
    # TF32: fp32's exponent (range), fp16's mantissa (precision).
    assert rows["tf32"]["smallest_normal"] == rows["fp32"]["smallest_normal"]
    assert rows["tf32"]["eps"] == rows["fp16"]["eps"] == 2.0**-10
    assert rows["bf16"]["eps"] == 2.0**-7 and rows["tf32"]["bits"] == 19


def test_exponent_histogram_counts_binary_exponents_of_nonzero_values():
    exps, counts = P.exponent_histogram(torch.tensor([1.0, 0.75, -1.5, 2.0**-30, 0.0, 3.0]))
    hist = dict(zip(exps, counts))
    assert exps[0] == -30 and exps[-1] == 1
    assert hist[0] == 2 and hist[-1] == 1 and hist[1] == 1 and hist[-30] == 1 and sum(counts) == 5


def test_cast_fractions_underflow_and_overflow():
    values = torch.tensor([2.0**-26, 2.0**-10, 1e5, 0.0])  # the zero is not counted
    plain = P.cast_fractions(values, torch.float16)
    assert (
        plain["nonzero"] == 3
        and plain["underflow"] == pytest.approx(1 / 3)
        and plain["overflow"] == pytest.approx(1 / 3)
    )
    scaled = P.cast_fractions(values, torch.float16, scale=2.0**4)
    assert scaled["underflow"] == 0 and scaled["overflow"] == pytest.approx(1 / 3)
    assert P.cast_fractions(values, torch.bfloat16)["underflow"] == 0  # bf16 has fp32's range


def test_largest_safe_scale():
    assert P.largest_safe_scale(torch.tensor([1.0])) == 2.0**15  # 65536 would pass 65504
    assert P.largest_safe_scale(torch.tensor([1e-3, -1e-4])) == 2.0**25
    assert P.largest_safe_scale(torch.tensor([1e5])) == 2.0**-1


def test_lost_updates_follow_the_mantissa():
    w = torch.ones(4)
    u = torch.tensor([2.0**-12, 2.0**-10, 0.0, -(2.0**-13)])  # the zero update is not counted
    fp16 = P.lost_updates(w, u, "fp16")
    assert fp16["updates"] == 3 and fp16["measured"] == pytest.approx(2 / 3) and fp16["rule"] == pytest.approx(2 / 3)
    assert P.lost_updates(w, u, "fp32")["measured"] == 0
    assert P.lost_updates(w, u, "bf16")["measured"] == 1  # 2^-10 < 2^-8: lost in bf16 too
    with pytest.raises(ValueError, match="compute mode"):
        P.lost_updates(w, u, "tf32")


def test_autocast_table_on_cpu():
    rows = {r["op"]: r for r in P.autocast_table("cpu", torch.bfloat16)}
    assert rows["conv2d"]["kind"] == "cast down: runs in bfloat16"
    assert rows["linear"]["from_fp32"] == "bfloat16"
    assert rows["cross_entropy"]["kind"] == "kept in float32"
    assert rows["relu"]["kind"] == "follows its input"


def test_matmul_error_grows_as_precision_falls():
    cpu = torch.device("cpu")
    fp32 = P.matmul_speed(cpu, "fp32", 64, min_run_time=0.01)
    bf16 = P.matmul_speed(cpu, "bf16", 64, min_run_time=0.01)
    assert fp32["rel_error"] < 1e-5 < 1e-3 < bf16["rel_error"] < 0.1
    assert fp32["flops_per_s"] * fp32["seconds"] == pytest.approx(2 * 64**3)
    with pytest.raises(ValueError, match="Unknown mode"):
        P.matmul_speed(cpu, "fp8", 64)
    assert torch.get_float32_matmul_precision() == "highest"  # math_mode restores what it changed


def test_conv_speed_counts_the_flops_it_times():
    cpu = torch.device("cpu")
    forward = P.conv_speed(cpu, "fp32", 2, 4, 6, "forward", min_run_time=0.01)
    r = P.conv_speed(cpu, "fp32", 2, 4, 6, "weight_grad", channels_last=True, min_run_time=0.01)
    assert forward["flops"] == 2 * 2 * 4 * 6 * 6 * 4 * 3 * 3  # 2 x N x C_out x H x W x C_in x k x k
    assert r["flops"] == 2 * forward["flops"]  # timed: the forward, then the weight gradient
    assert r["flops_per_s"] * r["seconds"] == pytest.approx(r["flops"]) and r["channels_last"]
    assert 0 <= r["iqr_s"] and r["calls"] >= 1
    with pytest.raises(ValueError, match="weight_grad"):
        P.conv_speed(cpu, "fp32", 2, 4, 6, "backward")


def test_capture_step_on_real_data():
    cap = P.capture_step(cpu_config(), batch_size=4, warm_steps=1)
    assert cap.weights.shape == cap.weight_grads.shape
    assert cap.activation_grads.numel() > cap.weights.numel() // 10
    assert torch.isfinite(cap.weight_grads).all() and (cap.weight_grads != 0).any()
    assert cap.step == 1 and cap.lr == pytest.approx(0.1)


def _record(precision, acc, losses, step_s=0.1, mem=100, steps=(0.1,)):
    return dict(
        precision=precision,
        final_val_accuracy=acc,
        loss=dict(values=losses),
        config=dict(global_batch_size=8),
        timing=dict(step_time_s=dict(median=step_s), step_times_s=[9.9, *steps], timing_warmup_steps=1),
        throughput=dict(images_per_s=8 / step_s),
        memory=dict(peak_bytes=mem, kind="test"),
    )


def test_parity_summary_and_verdict():
    runs = {
        "32-true": [_record("32-true", 0.50, [2, 1]), _record("32-true", 0.60, [2, 1.2])],
        "bf16-mixed": [_record("bf16-mixed", 0.55, [2, 1.1]), _record("bf16-mixed", 0.58, [2, 1.1])],
        "16-mixed": [_record("16-mixed", 0.20, [2, 2]), _record("16-mixed", 0.25, [2, 2])],
    }
    rows = P.parity_summary(runs)
    fp32 = rows[0]
    assert (fp32["accuracy"]["mean"], fp32["accuracy"]["min"], fp32["accuracy"]["max"]) == (
        pytest.approx(0.55),
        0.5,
        0.6,
    )
    assert fp32["final_loss"]["mean"] == pytest.approx(1.1) and fp32["skipped_steps"] == [0, 0]
    verdict = P.parity_verdict(rows)
    assert "bf16-mixed" in verdict[0] and "inside" in verdict[0]
    assert "16-mixed" in verdict[1] and "outside" in verdict[1] and "-32.5 points" in verdict[1]


def test_speedups_pool_timed_steps_and_say_faster_or_slower():
    runs = {
        "fp32": [_record("a", 0, [1], steps=(0.1, 0.1, 0.5), mem=100), _record("a", 0, [1], steps=(0.1, 0.3))],
        "bf16": [_record("b", 0, [1], steps=(0.05, 0.05, 0.04), mem=50)],
        "fp16": [_record("c", 0, [1], steps=(0.4,))],
    }
    rows = {r["label"]: r for r in P.speedups(runs, "fp32")}
    # fp32: warm-up (9.9 s) left out of both runs, median of the 5 pooled steps = 0.1 s -> 80 images/s
    assert rows["fp32"]["timed_steps"] == 5 and rows["fp32"]["images_per_s"] == pytest.approx(80)
    assert rows["bf16"]["speedup"] == pytest.approx(2) and rows["bf16"]["verdict"] == "faster"
    assert rows["fp16"]["verdict"] == "slower" and rows["bf16"]["memory_ratio"] == pytest.approx(0.5)


def test_loss_scale_recorder_marks_skipped_steps():
    from types import SimpleNamespace

    from fasttrain.rank.callbacks import LossScaleRecorder

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler), global_step=0)
    rec = LossScaleRecorder()
    rec.on_train_start(trainer, None)
    for step, factor in enumerate([1.0, float("inf"), 1.0], start=1):
        optimizer.zero_grad()
        scaler.scale(model(torch.ones(1, 2)).sum() * factor).backward()
        scaler.unscale_(optimizer)
        rec.on_before_optimizer_step(trainer, None, optimizer)
        scaler.step(optimizer)
        scaler.update()
        trainer.global_step = step
        rec.on_train_batch_end(trainer, None, None, None, step - 1)
    summary = rec.summary(growth_interval=1)
    assert summary["initial"] == 2.0**10
    assert summary["values"] == [2.0**11, 2.0**10, 2.0**11]
    assert summary["skipped"] == [False, True, False] and summary["skipped_steps"] == 1


def test_no_loss_scale_without_a_scaler():
    from types import SimpleNamespace

    from fasttrain.rank.callbacks import LossScaleRecorder

    rec = LossScaleRecorder()
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(), global_step=1)
    rec.on_train_start(trainer, None)
    rec.on_before_optimizer_step(trainer, None, None)
    rec.on_train_batch_end(trainer, None, None, None, 0)
    assert rec.summary(2000) is None


def test_fp16_on_cpu_warns_clearly_and_16_true_is_refused():
    from fasttrain.rank.checks import check_hardware

    with pytest.warns(UserWarning, match=r"16-mixed.*CPU.*slow.*'32-true'"):
        check_hardware(cpu_config(precision="16-mixed"))
    with pytest.raises(ConfigError, match="bf16-mixed"):
        check_hardware(cpu_config(precision="16-true"))


def test_growth_interval_is_validated():
    with pytest.raises(ConfigError, match="loss_scale_growth_interval=0.*2000"):
        TrainConfig.from_profile("smoke", loss_scale_growth_interval=0).validate()


def test_precision_runs_needs_a_seed():
    with pytest.raises(ConfigError, match="seeds=0"):
        P.precision_runs(cpu_config(), ["32-true"], seeds=0)


def test_runs_are_named_by_their_settings(monkeypatch):
    """A speed run with a parity run's settings gets its name, so launch.run returns the parity run."""
    from fasttrain import launch

    names = []
    monkeypatch.setattr(launch, "run", lambda config, name, **kw: names.append(name) or {})
    P.precision_runs(cpu_config(), ["32-true", "bf16-mixed"], seeds=2)
    P.precision_run(cpu_config(precision="32-true", seed=1))
    P.precision_run(cpu_config(precision="32-true", matmul_precision="high", channels_last=True))
    assert names == [
        "ch02-32-true-seed0",
        "ch02-32-true-seed1",
        "ch02-bf16-mixed-seed0",
        "ch02-bf16-mixed-seed1",
        "ch02-32-true-seed1",
        "ch02-32-true-tf32-channels-last-seed0",
    ]


def test_tiny_16_mixed_job_records_its_loss_scale(tmp_path):
    """A real Lightning job with fp16 autocast and a GradScaler on the CPU (tiny: fp16 is slow there)."""
    from fasttrain.rank.job import train

    config = cpu_config(
        precision="16-mixed",
        image_size=16,
        global_batch_size=4,
        max_steps=3,
        timing_warmup_steps=1,
        val_samples=16,
        loss_scale_growth_interval=1,
    )
    with pytest.warns(UserWarning, match="16-mixed"):
        record = train(config, str(tmp_path / "r.json"))
    ls = record["loss_scale"]
    assert ls["initial"] == 2.0**16 and ls["growth_interval"] == 1 and len(ls["values"]) == 3
    previous = [ls["initial"]] + ls["values"][:-1]
    assert ls["skipped"] == [after < before for after, before in zip(ls["values"], previous)]
    # growth_interval=1: every clean step doubles the scale, every overflow halves it.
    assert all(after in (2 * before, before / 2) for after, before in zip(ls["values"], previous))
    assert "loss_scale" not in train(
        cpu_config(max_steps=2, timing_warmup_steps=1, val_samples=16, global_batch_size=4, image_size=16), None
    )
