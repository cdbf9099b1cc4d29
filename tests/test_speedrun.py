"""The recipe's levers, its leave-one-out configurations and the speedrun command, on synthetic records
(CI trains them for real: `make speedrun PROFILE=smoke` in test_notebooks.py, before chapter 04)."""

import json

import pytest
from fasttrain.chapters import ch04_claims
from fasttrain.chapters import ch04_speedrun as speedrun
from fasttrain.chapters.ch04_report import summarize


def record(name, times_acc, steps=100, images_per_s=100.0, test=0.9, config=None, spent=None):
    """A result record whose validations reached the given (train seconds, accuracy) points."""
    return dict(
        name=name,
        steps=steps,
        config={**dict(val_samples=2000, val_every_steps=10, global_batch_size=128), **(config or {})},
        environment=dict(device_name="cpu"),
        final_val_accuracy=times_acc[-1][1],
        validation=[dict(step=10 * (i + 1), train_time_s=t, accuracy=a) for i, (t, a) in enumerate(times_acc)],
        timing=dict(
            train_time_s=spent if spent is not None else times_acc[-1][0],
            step_times_s=[128 / images_per_s * (1 + 0.01 * (i % 3)) for i in range(steps)],
            timing_warmup_steps=1,
        ),
        throughput=dict(images_per_s=images_per_s, images_per_s_per_device=images_per_s),
        flops=dict(mfu=0.1),
        test=dict(accuracy=test, images=10_000),
    )


def test_each_leave_one_out_is_the_recipe_with_one_lever_set_back_to_the_baseline():
    configs = speedrun.configurations("cpu", "bf16-mixed")
    levers = speedrun.levers("cpu", "bf16-mixed")
    names = [lever.name for lever in levers]
    assert names[:2] == ["schedule", "optimizer"]  # separate levers
    assert {"width", "mixed precision", "label smoothing", "channels_last"} <= set(names)
    assert configs["baseline"] == {}
    recipe = configs["recipe"]
    for lever in levers:
        without = configs[f"without {lever.name}"]
        changed = {k for k in without if without[k] != recipe[k]}
        assert changed and changed <= set(lever.off), lever.name
    # Where bf16 is slower there is no precision lever; in smoke the width is the baseline's already.
    assert "mixed precision" not in [lever.name for lever in speedrun.levers("cpu", None)]
    assert "width" not in [lever.name for lever in speedrun.levers("smoke", None)]


def test_run_configs_follow_the_linear_rule_validate_on_a_fixed_grid_and_cap_the_others():
    configs = speedrun.configurations("smoke")
    recipe = speedrun.run_config("recipe", configs["recipe"], "smoke", seed=3)
    base = speedrun.run_config("baseline", configs["baseline"], "smoke", cap_s=40.0)
    assert recipe.seed == 3 and recipe.target_accuracy == speedrun.TARGETS["smoke"] and recipe.test_full
    assert recipe.effective_lr == pytest.approx(base.lr * recipe.global_batch_size / base.global_batch_size)
    assert recipe.warmup_steps >= 1 and base.warmup_steps == 0 and base.schedule == "constant"
    assert recipe.max_train_time_s is None and base.max_train_time_s == 40.0
    assert base.max_steps * base.global_batch_size > recipe.max_steps * recipe.global_batch_size  # the cap binds
    for c in (recipe, base):
        assert c.val_every_steps * c.global_batch_size == speedrun.VALIDATE_EVERY_IMAGES["smoke"]
    assert recipe.name != base.name and recipe.extra["configuration"] == "recipe"


def test_summary_rows_count_a_short_run_as_a_lower_bound():
    recipe = summarize("recipe", [record("a", [(1.0, 0.3), (2.0, 0.8)]), record("b", [(1.0, 0.2), (4.0, 0.8)])], 0.75)
    assert recipe["times_s"] == [2.0, 4.0] and recipe["time_std_s"] == pytest.approx(1.4142, rel=1e-3)
    assert recipe["time_ci95_s"][0] < 3.0 < recipe["time_ci95_s"][1]
    short = summarize("baseline", [record("c", [(5.0, 0.5)], spent=9.0)], 0.75)
    assert short["reached"] == 0 and short["at_least_s"] == [9.0]
    ratio, exact = speedrun.ratio_to(short, recipe)
    assert ratio == pytest.approx(3.0) and not exact
    table = speedrun.speedrun_table([recipe, short], 0.75)
    assert "> 9.0 (0/1 reached)" in table and "> 3.00x" in table and "| 2.0, 4.0 |" in table
    assert "3.0 ± 1.4 [" in table and "0.9000, 0.9000" in table


def test_leave_one_out_decides_pays_costs_or_within_the_spread():
    recipe = summarize("recipe", [record(str(i), [(t, 0.8)]) for i, t in enumerate((10.0, 11.0, 10.5))], 0.75)
    slower = summarize("without x", [record(str(i), [(t, 0.8)]) for i, t in enumerate((20.0, 21.0))], 0.75)
    same = summarize("without y", [record(str(i), [(t, 0.8)]) for i, t in enumerate((10.0, 12.0))], 0.75)
    faster = summarize("without z", [record(str(i), [(t, 0.8)]) for i, t in enumerate((5.0, 5.2))], 0.75)
    # Stopped short at 6 s: faster than the recipe only as far as anyone knows, so not decided.
    short = summarize("without w", [record(str(i), [(t, 0.5)], spent=6.0) for i, t in enumerate((6.0, 6.0))], 0.75)
    loo = {r["configuration"]: r for r in speedrun.leave_one_out_rows([recipe, slower, same, faster, short])}
    assert [loo[k]["verdict"] for k in ("without x", "without y", "without z", "without w")] == [
        "pays",
        "within the spread",
        "costs",
        "within the spread",
    ]
    assert "lower bound" in loo["without w"]["measured"]
    assert "**pays**" in speedrun.leave_one_out_table(list(loo.values()))


def test_leave_one_out_splits_time_into_images_to_target_and_images_per_second():
    def runs(name, steps_to_target, images_per_s):
        # validations every 10 steps; the target first met at the given step
        return summarize(
            name,
            [
                record(
                    f"{name}{i}",
                    [(s / 10 * (j + 1), 0.5 if j + 1 < s // 10 else 0.8) for j in range(s // 10)],
                    images_per_s=r,
                )
                for i, (s, r) in enumerate(zip(steps_to_target, images_per_s))
            ],
            0.75,
        )

    recipe = runs("recipe", (60, 60, 70), (100.0, 102.0, 101.0))
    learns = runs("without schedule", (120, 130), (101.0, 100.0))  # more images, same rate
    cheap = runs("without layout", (60, 70), (60.0, 61.0))  # same images, fewer images/s
    noisy = runs("without z", (60, 70), (70.0, 130.0))  # same images, rates all over the place
    assert recipe["images_to_target"] == [60 * 128, 60 * 128, 70 * 128]
    loo = {r["configuration"]: r for r in speedrun.leave_one_out_rows([recipe, learns, cheap, noisy])}
    assert loo["without schedule"]["through"] == "fewer images to the target"
    assert loo["without layout"]["through"] == "more images/s"
    assert loo["without z"]["through"] == "neither beyond the spread"
    table = speedrun.leave_one_out_table(list(loo.values()))
    # thousands of images: 125 steps x 128 without, (60 + 60 + 70) / 3 steps x 128 with
    assert "| fewer images to the target |" in table and "| 16 vs 8.107 (n=2, 3)" in table


def test_chapter_04_claims_read_the_runs():
    def runs_with(base_spent=30.0, test=0.9):
        fast = [
            record(str(i), [(t / 2, 0.6), (t, 0.91)], steps=20, test=test, images_per_s=300.0)
            for i, t in enumerate((10, 10.2, 10.1))
        ]
        return {
            "recipe": fast,
            "baseline": [record("b", [(base_spent, 0.8)], steps=200, spent=base_spent, images_per_s=100.0)],
            "without schedule": [record("s", [(25.0, 0.85)], steps=60, spent=25.0)],
            "without data parallel": [
                record(str(i), [(t / 2, 0.6), (t, 0.91)], steps=20) for i, t in enumerate((20, 20.5, 20.2))
            ],
        }

    def verdicts(runs):
        table = [summarize(n, r, 0.9) for n, r in runs.items()]
        return {c.claim.split(":")[0][:40]: c.holds for c in ch04_claims.check_claims(runs, table, 0.9, "cpu").items}

    said = verdicts(runs_with())
    # reached, test set, 2x, fewer steps, images/s, same steps in DDP, schedule's steps, two leave-one-outs
    assert list(said.values()) == [True, True, True, True, True, True, True, None, True]
    faster_alone = runs_with()  # one process met the target at step 10, every DDP run at step 20
    faster_alone["without data parallel"] = [record(str(i), [(t, 0.91)], steps=10) for i, t in enumerate((9, 9.5))]
    assert verdicts(faster_alone)["data parallelism at the same global batc"] is False
    said = verdicts(runs_with(base_spent=15.0, test=0.85))  # baseline spent 1.4x and stopped: undecided
    assert said["the whole test set confirms it"] is False
    assert list(said.values())[2] is None


def test_speedrun_command_prints_the_record_writes_the_summary_and_fails_on_a_miss(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(speedrun, "mixed_precision_speedup", lambda profile: dict(fp32_s=2.0, bf16_s=1.0, speedup=2.0))
    calls = []

    def fake_train(name, values, profile, runs, target, cap_s, show, say, finished_only=False):
        calls.append((name, runs, cap_s))
        t = 30.0 if name == "baseline" else 4.0
        return [record(f"{name}-{i}", [(t + i, target + 0.01)], config=values) for i in range(runs)]

    monkeypatch.setattr(speedrun, "_train", fake_train)
    args = ["--profile", "smoke", "--runs", "3", "--baseline-runs", "1", "--loo-runs", "2", "--no-plain-loop"]
    assert speedrun.main(args) == 0
    out = capsys.readouterr().out
    assert calls[0] == ("recipe", 3, None) and calls[1] == ("baseline", 1, pytest.approx(2.5 * 5.0))
    assert calls[2][2] == pytest.approx(2.0 * 5.0)
    assert {c[0] for c in calls} == {"recipe", "baseline"} | {
        f"without {lv.name}" for lv in speedrun.levers("smoke", "bf16-mixed")
    }
    assert "mixed precision on" in out and "leave-one-out" in out
    summary = json.loads((tmp_path / "speedrun" / "summary-smoke.json").read_text())
    assert summary["speedup_vs_baseline"] == dict(value=pytest.approx(6.0), exact=True)
    assert summary["target"] == speedrun.TARGETS["smoke"] and summary["rows"][0]["times_s"] == [4.0, 5.0, 6.0]
    assert summary["recipe"]["config"]["precision"] == "bf16-mixed" and summary["environment"]["torch"]
    assert summary["rows"][0]["test_accuracies"] == [0.9] * 3 and summary["code_version"]

    monkeypatch.setattr(
        speedrun, "_train", lambda name, values, *a: [record("slow", [(1.0, 0.1)], config=values, spent=1.0)]
    )
    assert speedrun.main(["--profile", "smoke", "--runs", "1", "--no-plain-loop"]) == 1
    assert "did not reach" in capsys.readouterr().err


def test_comparison_table_puts_this_run_beside_published_figures():
    runs = {
        "recipe": [record("r", [(6.0, 0.9)], images_per_s=135.0)],
        "without data parallel": [record("s", [(8.0, 0.9)], images_per_s=300.0)],
    }
    rows = [summarize(n, r, 0.8) for n, r in runs.items()]
    text = speedrun.comparison_markdown(runs, rows, 0.8)
    assert "| this run: recipe (cpu) | 135 | 10.0% | 6.0 s to 80% | 45% |" in text
    assert "Jia et al." in text and "87.9%" in text


def test_finished_only_reports_an_interrupted_speedrun_without_training(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FASTTRAIN_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(speedrun, "mixed_precision_speedup", lambda profile: dict(fp32_s=1.0, bf16_s=2.0, speedup=0.5))
    done = {"recipe": [4.0, 5.0], "baseline": [30.0]}  # the leave-one-outs never started

    def finished(config):
        times = done.get(config.extra["configuration"], [])
        return (
            record(config.name, [(times[config.seed], 0.8)], config=config.to_dict())
            if config.seed < len(times)
            else None
        )

    monkeypatch.setattr(speedrun, "_finished", finished)
    monkeypatch.setattr("fasttrain.launch.run", lambda *a, **k: pytest.fail("--finished-only trained a job"))
    assert speedrun.main(["--profile", "smoke", "--loo-runs", "1", "--finished-only"]) == 0
    out = capsys.readouterr().out
    assert "without schedule  seed 0  not trained yet" in out
    summary = json.loads((tmp_path / "speedrun" / "summary-smoke.json").read_text())
    assert [r["name"] for r in summary["rows"]] == ["recipe", "baseline"] and summary["plain_loop"] is None
    done["recipe"] = [4.0]  # the caps need every run of the recipe
    assert speedrun.main(["--profile", "smoke", "--finished-only"]) == 2
    assert "Only 1 of the recipe's 2 runs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [(["--runs", "0"], "1 or more"), (["--target", "1.5"], "between 0 and 1"), (["--profile", "tpu"], "profile")],
)
def test_speedrun_command_refuses_bad_arguments(args, message, capsys):
    assert speedrun.main(args) == 2
    assert message in capsys.readouterr().err
