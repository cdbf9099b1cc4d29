"""The recipe's stages and the speedrun command, on synthetic records (chapter 04 trains them for real)."""

import json

import pytest
from fasttrain.chapters import ch04_speedrun as speedrun


def record(name, times_acc, steps=100, images_per_s=100.0):
    """A result record whose validations reached the given (train seconds, accuracy) points."""
    return dict(
        name=name,
        steps=steps,
        final_val_accuracy=times_acc[-1][1],
        validation=[dict(step=10 * (i + 1), train_time_s=t, accuracy=a) for i, (t, a) in enumerate(times_acc)],
        throughput=dict(images_per_s=images_per_s),
    )


def test_stages_add_one_lever_at_a_time():
    recipe = speedrun.stages("smoke", "bf16-mixed", compile=True)
    names = [s.name for s in recipe]
    assert names[0] == "baseline" and recipe[0].overrides == {}
    assert names[-1] == "torch.compile"
    # Every stage keeps the levers before it (the large batch retunes the optimizer's values).
    for before, after in zip(recipe[1:], recipe[2:]):
        assert set(before.overrides) <= set(after.overrides), (before.name, after.name)
    layout = next(s for s in recipe if s.name == "precision + layout")
    assert layout.overrides["precision"] == "bf16-mixed" and layout.overrides["channels_last"]
    # Where bf16 is slower, the stage keeps fp32.
    fp32 = next(s for s in speedrun.stages("smoke", None) if s.name == "precision + layout")
    assert "precision" not in fp32.overrides
    big = speedrun.stage_config(recipe[names.index("large batch")], "smoke")
    assert big.optimizer == "lars" and big.global_batch_size == speedrun.LARGE_BATCH["smoke"]
    assert big.effective_lr > speedrun.stage_config(recipe[0], "smoke").lr  # the linear scaling rule


def test_stage_configs_stop_at_the_target_and_validate_at_a_fixed_image_interval():
    for stage in speedrun.stages("smoke", "bf16-mixed"):
        c = speedrun.stage_config(stage, "smoke", seed=3)
        assert c.target_accuracy == speedrun.TARGETS["smoke"] and c.seed == 3
        assert c.val_every_steps * c.global_batch_size == pytest.approx(
            speedrun.VALIDATE_EVERY_IMAGES["smoke"], rel=0.5
        )
        assert c.extra["stage"] == stage.name


def test_time_to_accuracy_and_summary():
    runs = [record("a", [(1.0, 0.3), (2.0, 0.6), (3.0, 0.7)]), record("b", [(1.0, 0.2), (4.0, 0.56)])]
    assert speedrun.time_to_accuracy(runs[0], 0.55) == 2.0
    assert speedrun.time_to_accuracy(runs[1], 0.6) is None
    row = speedrun.summarize("x", runs, 0.55)
    assert row["reached"] == 2 and row["time_mean_s"] == pytest.approx(3.0)
    assert row["time_std_s"] == pytest.approx(1.4142, rel=1e-3)
    base = speedrun.summarize("base", [record("c", [(9.0, 0.6)])], 0.55)
    rows = speedrun.speedup_rows([base, row])
    assert rows[1]["speedup"] == pytest.approx(3.0)
    missed = speedrun.summarize("m", [record("d", [(1.0, 0.1)])], 0.55)
    assert speedrun.speedup_rows([base, missed])[1]["speedup"] != speedrun.speedup_rows([base, missed])[1]["speedup"]
    assert "0/1" in speedrun.speedrun_table([base, missed], 0.55)
    table = speedrun.speedrun_table([base, row], 0.55)
    assert "| 9.0 (one run) |" in table and "| 3.0 ± 1.4 |" in table  # one run shows no spread, not ± 0


def test_lever_verdicts_weigh_the_change_against_the_spread():
    def row(name, mean, std, reached=2, runs=2):
        return dict(name=name, time_mean_s=mean, time_std_s=std, reached=reached, runs=runs)

    said = speedrun.lever_verdicts(
        [row("base", 10, 1), row("a", 5, 1), row("b", 5.5, 1), row("c", 9, 0, 1), row("d", 4, 0.5)], 0.8
    )
    assert said[0].endswith("2.00x faster")
    assert "1.10x slower (within the run-to-run spread)" in said[1]
    assert "did not reach 80% in 1 of 2 runs" in said[2]
    assert "which the stage before did not always" in said[3]


def test_comparison_table_puts_this_run_beside_published_and_recorded_figures():
    def rec(per_device, mfu=0.1):
        return dict(
            name="r",
            environment=dict(device_name="cpu"),
            config=dict(precision="32-true"),
            throughput=dict(images_per_s_per_device=per_device),
            flops=dict(mfu=mfu),
        )

    runs = {"baseline": [rec(100)], "precision + layout": [rec(300)], "data parallel": [rec(150), rec(120)]}
    rows = [dict(name=n, time_mean_s=t) for n, t in zip(runs, (10, 5, 6))]
    text = speedrun.comparison_markdown(runs, rows, 0.8, [rec(4000, None)])
    assert "| this run: data parallel (cpu) | 135 | 10.0% | 6.0 s to 80% | 45% |" in text
    assert "Jia et al." in text and "87.9%" in text and "| recorded: r on cpu (32-true) | 4,000 |  |" in text


def test_speedrun_command_prints_the_table_writes_the_summary_and_fails_on_a_miss(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(speedrun, "mixed_precision_speedup", lambda profile: dict(fp32_s=2.0, bf16_s=1.0, speedup=2.0))
    calls = []

    def fake_run_stage(stage, profile, repeats, target, prefix="04", timeout=3600):
        calls.append((stage.name, repeats, target))
        t = 10.0 if stage.name == "baseline" else 4.0
        return [record(f"{stage.name}-{i}", [(t + i, target + 0.01)]) for i in range(repeats)]

    monkeypatch.setattr(speedrun, "run_stage", fake_run_stage)
    assert speedrun.main(["--profile", "smoke", "--runs", "3", "--baseline-runs", "2"]) == 0
    out = capsys.readouterr().out
    assert calls[0] == ("baseline", 2, speedrun.TARGETS["smoke"]) and calls[1][:2] == ("speedrun", 3)
    assert "mixed precision on" in out and "2/2" in out and "3/3" in out
    summary = json.loads((tmp_path / "speedrun" / "summary-smoke.json").read_text())
    assert summary["rows"][1]["speedup"] == pytest.approx(10.5 / 5.0)
    assert summary["speedrun_config"]["precision"] == "bf16-mixed"

    monkeypatch.setattr(
        speedrun,
        "run_stage",
        lambda stage, profile, repeats, target, prefix="04": [record("slow", [(1.0, target - 0.1)])],
    )
    assert speedrun.main(["--profile", "smoke", "--runs", "1"]) == 1
    assert "did not reach" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [(["--runs", "0"], "1 or more"), (["--target", "1.5"], "between 0 and 1"), (["--profile", "tpu"], "profile")],
)
def test_speedrun_command_refuses_bad_arguments(args, message, capsys):
    assert speedrun.main(args) == 2
    assert message in capsys.readouterr().err
