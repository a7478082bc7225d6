"""Two or more checkpoints side by side on the same held-out prompts and seeds: which one to ship.

    python bench/compare_models.py MODEL [MODEL ...] [--n 120] [--seed 6000]
        [--settings "cfg=4" "shift=5,steps=30" ...] [--vae] [--out FILE.md]

Uses a prompt set of its own (seed 6000; bench/quality.py uses 1000), so choosing a checkpoint here
does not tune it to the benchmark that reports it. Each model generates every prompt with the same seed
at its default settings; the evaluator scores colour, shape, motion, presence and all four. Beside the
rates, the paired counts on "all four right" (only the first model right / only the other) show whether
a difference is more than seed luck: with n prompts a gap of a few clips either way is noise.
``--settings`` runs each model at each of the given variants of generate()'s sampling settings (steps,
cfg, shift, sampler; one comma-separated group per variant) instead of its defaults: a settings sweep.
``--vae`` adds each checkpoint's VAE reconstruction of the same rendered scenes: the ceiling its DiT works
under (a clip the decoder cannot draw, the DiT cannot either).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import emit_table  # noqa: E402
from quality import KEYS, presence_by_size, presence_by_speed, rate_cells, to_uint8, vae_results  # noqa: E402

from sora_core.pipeline import generate, load_models  # noqa: E402
from sora_core.world.dataset import prompt_set  # noqa: E402
from sora_core.world.evaluate import score_clip  # noqa: E402

SETTING_TYPES = {"steps": int, "cfg": float, "shift": float, "sampler": str}
TYPE_WORDS = {int: "a whole number", float: "a number", str: "a name"}


def parse_settings(text: str) -> dict[str, object]:
    """``"shift=5,steps=30"`` -> ``{"shift": 5.0, "steps": 30}``; a clear error for an unknown or bad setting."""
    settings: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in SETTING_TYPES:
            raise argparse.ArgumentTypeError(
                f"--settings {text!r}: write KEY=VALUE pairs with KEY one of {', '.join(SETTING_TYPES)}")
        try:
            settings[key] = SETTING_TYPES[key](value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--settings {text!r}: {key} needs {TYPE_WORDS[SETTING_TYPES[key]]}, not {value!r}") from None
    return settings


def settings_label(settings: dict[str, object]) -> str:
    return " ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items())


def score_model(models, cases: list, seed: int, settings: dict[str, object]) -> list[dict[str, bool]]:
    results = []
    for i, case in enumerate(cases):
        frames = generate(case.prompt, models=models, seed=seed + i, **settings).frames
        result = score_clip(case.scene, to_uint8(frames))
        results.append({k: bool(result[k]) for k in KEYS})
    return results


def presence_cells(counts: dict[str, tuple[int, int]]) -> str:
    """Presence per group (:func:`quality.presence_by`) as table cells."""
    return " | ".join(f"{100 * hits / n:.1f}% of {n}" if n else "none asked" for hits, n in counts.values())


def report(paths: list[str], scores: list[list[dict[str, bool]]], cases: list, seed: int, seconds: float,
           vae_scores: dict[str, list[dict[str, bool]]] | None = None,
           produced_by: str = "python bench/compare_models.py") -> str:
    n = len(cases)
    lines = [
        "# Checkpoint comparison",
        "",
        f"{n} held-out short prompts (`prompt_set(seed={seed})`, not the benchmark's set), one seed each, the same "
        f"for every model, default settings unless others are named. Produced by `{produced_by}`.",
        "",
        "| model | colour | shape | motion | present in every frame | all four |",
        "|---|---|---|---|---|---|",
    ]
    rows = [(f"`{path}`", results) for path, results in zip(paths, scores, strict=True)]
    rows += [(f"`{path}`: VAE reconstruction of the rendered scenes", results)
             for path, results in (vae_scores or {}).items()]
    for name, results in rows:
        lines.append(f"| {name} | {rate_cells(results)} |")
    lines += ["", "Present in every frame, by the speed of the prompt's object (still objects count as slow):", "",
              "| model | slow | fast |", "|---|---|---|"]
    lines += [f"| {name} | {presence_cells(presence_by_speed(results, cases))} |" for name, results in rows]
    lines += ["", "Present in every frame, by the size of the prompt's object:", "",
              "| model | small | medium | large |", "|---|---|---|---|"]
    lines += [f"| {name} | {presence_cells(presence_by_size(results, cases))} |" for name, results in rows]
    first = scores[0]
    lines.append("")
    for path, results in zip(paths[1:], scores[1:], strict=True):
        only_first = sum(a["all_ok"] and not b["all_ok"] for a, b in zip(first, results, strict=True))
        only_other = sum(b["all_ok"] and not a["all_ok"] for a, b in zip(first, results, strict=True))
        lines.append(f"All four right only with `{paths[0]}`: {only_first} prompts; only with `{path}`: "
                     f"{only_other}.")
    lines += ["", f"Run time {seconds:.0f} s on {torch.get_num_threads()} CPU threads."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="checkpoint paths (or 'default')")
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--seed", type=int, default=6000)
    parser.add_argument("--settings", type=parse_settings, nargs="*", default=None,
                        help='sampling settings per variant, e.g. "shift=5" "steps=30,sampler=euler"')
    parser.add_argument("--vae", action="store_true",
                        help="also score each checkpoint's VAE reconstruction of the same scenes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    cases = prompt_set(args.n, seed=args.seed, kind="short")
    start = time.perf_counter()
    runs, scores, vae_scores = [], [], {}
    for path in args.models:
        models = load_models(path)
        for settings in args.settings or [{}]:
            runs.append(f"{path} {settings_label(settings)}".strip())
            scores.append(score_model(models, cases, args.seed, settings))
            print(runs[-1], {k: f"{sum(r[k] for r in scores[-1]) / args.n:.1%}" for k in KEYS}, file=sys.stderr,
                  flush=True)
        if args.vae:
            vae_scores[path] = vae_results(models, args.n, args.seed)
    text = report(runs, scores, cases, args.seed, time.perf_counter() - start, vae_scores)
    emit_table(text.splitlines(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
