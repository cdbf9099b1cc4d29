"""Chapter 03's tables and sentences for the steps-to-target sweep, each built from this run's numbers."""

from __future__ import annotations

import math
from typing import Any

from fasttrain.chapters.ch03_knee import midpoint, noise_scale_estimate, target_row
from fasttrain.chapters.ch03_target import RECIPE_LABELS, TargetPlan, target_config, target_plan
from fasttrain.report.tables import markdown_table


def plan_from_parameters(
    profile: str, batch_sizes=None, target_accuracy=None, epochs=None, lr=None, lars_eta=None
) -> TargetPlan:
    """The chapter's parameters on the profile's plan (epochs: each job's budget); with batch_sizes given,
    the fixed-lr and LARS jobs run at the largest of them."""
    changes: dict[str, Any] = dict(target_accuracy=target_accuracy, max_epochs=epochs, lr=lr, lars_eta=lars_eta)
    if batch_sizes:
        sizes = tuple(sorted(batch_sizes))
        changes.update(batch_sizes=sizes, fixed_batch_sizes=(sizes[-1],), lars_batch_sizes=(sizes[-1],))
    return target_plan(profile, **changes)


def plan_table(plan: TargetPlan, profile: str, devices: int) -> str:
    """The jobs the sweep will train: recipe, batch, rate, warm-up, budget and validation grid."""
    wanted = dict(scaled=plan.batch_sizes, fixed=plan.fixed_batch_sizes, lars=plan.lars_batch_sizes)
    cells = []
    for recipe, sizes in wanted.items():
        for b in sizes:
            c = target_config(plan, recipe, b, profile, devices)
            cells.append(
                [
                    RECIPE_LABELS[recipe],
                    f"{b:,}",
                    str(c.per_device_batch_size),
                    f"{c.effective_lr:.3g}",
                    str(c.warmup_steps),
                    str(c.max_steps),
                    str(c.val_every_steps),
                ]
            )
    head = ["recipe", "batch", "per rank", "peak lr", "warm-up steps", "step budget", "validate every"]
    size = "all" if plan.train_samples is None else f"{plan.train_samples:,}"
    return (
        f"**{profile}**: {devices} rank(s) per job, ResNet-50 at width {plan.width:g} on {plan.image_size}×"
        f"{plan.image_size} Fashion-MNIST ({size} training images), target {plan.target_accuracy:.0%} on "
        f"{plan.val_samples:,} validation images\n\n" + markdown_table(head, cells)
    )


def target_rows(records: dict[str, dict[int, dict]]) -> list[dict]:
    return [target_row(r) for recipe in records for _, r in sorted(records[recipe].items())]


def doublings_table(doubles: list[dict]) -> str:
    head = ["batch", "steps fewer per doubling", "grid allows", "of perfect (2.0x)"]
    cells = [
        [
            f"{d['small']} → {d['big']}",
            f"{d['ratio']:.2f}x",
            f"{d['ratio_low']:.2f}–{d['ratio_high']:.2f}x",
            f"{math.log2(max(d['ratio'], 1e-9)):.0%}",
        ]
        for d in doubles
    ]
    return markdown_table(head, cells)


def knee_sentence(k: dict, plan: TargetPlan) -> str:
    if not math.isfinite(k["b_crit"]):
        return "the steps did not level off over this sweep: no finite knee (S_min ≤ 0 in the fit)"
    where = (
        "below the sweep's smallest batch"
        if k["b_crit"] < plan.batch_sizes[0]
        else "above the sweep's largest batch"
        if k["b_crit"] > plan.batch_sizes[-1]
        else "inside the sweep"
    )
    return (
        f"fit S(B) = S_min (1 + B_crit / B): S_min ≈ {k['s_min']:.0f} steps, knee B_crit ≈ {k['b_crit']:.0f} "
        f"({where}); over the validation grid's ends and leaving out one batch at a time it ranges "
        f"{k['low']:.0f}–{k['high']:.0f}"
    )


def noise_estimates(records: dict[str, dict[int, dict]], span: int = 5) -> dict[str, dict]:
    """B_simple from the smallest-batch job alone, and pooled over every job of the scaled sweep."""
    scaled = records["scaled"]
    if not any(r.get("gradient_noise") for r in scaled.values()):
        return {}
    smallest = min(scaled)
    return {
        f"B={smallest} job alone (per rank {scaled[smallest]['gradient_noise']['b_small']})": noise_scale_estimate(
            [scaled[smallest]], span
        ),
        "every scaled-SGD job, pooled": noise_scale_estimate(list(scaled.values()), span),
    }


def recipe_sentences(rows: list[dict]) -> list[str]:
    """Fixed lr and LARS against scaled SGD at the same batch, in words from the numbers."""
    scaled = {r["batch"]: r for r in rows if r["recipe"] == "scaled"}
    out = []
    for r in rows:
        if r["recipe"] == "scaled" or r["batch"] not in scaled:
            continue
        s, name = scaled[r["batch"]], RECIPE_LABELS[r["recipe"]]
        if r["steps"] is None:
            out.append(
                f"B={r['batch']}: {name} missed the target in its {r['steps_run']} steps "
                f"(best {r['best_accuracy']:.1%}); scaled SGD reached it in {s['steps']}"
            )
        elif s["steps"] is not None:
            ratio = midpoint(r) / midpoint(s)
            out.append(
                f"B={r['batch']}: {name} took {r['steps_before']}–{r['steps']} steps, scaled SGD "
                f"{s['steps_before']}–{s['steps']}: {ratio:.2f}x the steps"
            )
    return out


def batchnorm_sentence(rows: list[dict], devices: int) -> str:
    per_rank = sorted({r["per_rank"] for r in rows})
    return (
        f"batch norm here normalises over each rank's batch: {', '.join(map(str, per_rank))} images per rank "
        f"({devices} ranks, no sync_batchnorm), so its statistics change with the batch size as well. Goyal et "
        "al. (arXiv:1706.02677) computed them per worker and kept each worker's batch fixed as they added "
        "workers: their large batches changed the number of workers, not what batch norm saw"
    )
