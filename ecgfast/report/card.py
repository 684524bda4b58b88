"""Model cards: what a checkpoint is, how it was made, how well it does, and what it is not for.

``write_model_card(checkpoint_path, ckpt, wall_time_s=..., device=..., metrics=...)``
writes ``OUT.card.md`` (for people) and ``OUT.card.json`` (for tools) beside the
checkpoint ``OUT.pt``, atomically. Every pretraining and fine-tuning run calls it
after saving its checkpoint.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["card_paths", "model_card", "render_card", "write_model_card"]

CARD_VERSION = 1

_INTENDED = {
    "encoder": ("Research on 12-lead ECG representations: embeddings for retrieval, clustering or "
                "visualisation, and initialisation or frozen features for downstream classifiers "
                "(`ecgfast finetune --ssl-checkpoint`, `ecgfast embed`, `ecgfast.load_encoder`)."),
    "classifier": ("Research and benchmarking of multi-label classification of 12-lead ECGs into the "
                   "classes below (`ecgfast predict`, `ecgfast.load_classifier`)."),
}

_LIMITATIONS = [
    "Not a medical device and not validated for clinical use: do not use it to diagnose, treat or triage "
    "patients.",
    "Trained on the corpora listed under Data (PTB-XL: 12-lead, 10 s resting ECGs of one German hospital "
    "archive, 1989-1996, at the sampling rate of the spec). Other populations, devices, lead placements, "
    "ambulatory or exercise recordings, and paediatric ECGs are out of distribution.",
    "Input must match the preprocessing spec: the leads named there, in mV, at its sampling rate (the "
    "loader resamples, reorders and normalises; exported models expect the trained rate and mV).",
    "Labels are PTB-XL's superdiagnostic classes derived from cardiologists' SCP statements; they are "
    "noisy and multi-label, and class frequencies follow PTB-XL's, not a screening population's.",
    "Metrics were measured on PTB-XL's fold 10 (patients unseen in training); performance elsewhere "
    "may differ.",
]


def card_paths(checkpoint_path: str | os.PathLike) -> tuple[Path, Path]:
    """``runs/x.pt`` -> (``runs/x.card.md``, ``runs/x.card.json``)."""
    p = Path(checkpoint_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".card.md"), p.with_name(stem + ".card.json")


def _plain(obj: Any) -> Any:
    """JSON-safe copy: tensors and numpy values become lists/numbers, paths strings, NaN stays None."""
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover
        np = torch = None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if torch is not None and isinstance(obj, torch.Tensor):
        return _plain(obj.tolist()) if obj.numel() <= 64 else f"<tensor {tuple(obj.shape)}>"
    if np is not None and isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    return str(obj)


def _limitations(card_data: dict, spec: Any) -> list[str]:
    task = spec.get("task") if isinstance(spec, dict) else None  # a classifier's --task
    out = [line.replace("PTB-XL's superdiagnostic classes", f"PTB-XL's {task} classes") if task else line
           for line in _LIMITATIONS]
    names = list(dict.fromkeys(str(d.get("name")) for d in card_data.get("corpora") or [] if d.get("name")))
    names = names or ["PTB-XL"]
    rate = spec.get("sampling_rate") if isinstance(spec, dict) else None
    out.insert(1, f"Trained on {', '.join(names)}" + (f" at {rate} Hz" if rate else "") +
               "; inputs at other rates are resampled to it, which cannot restore content above its Nyquist "
               "frequency.")
    return out


def _kind(ckpt: dict) -> str:
    from ecgfast.base.checkpoint import infer_kind

    return infer_kind(ckpt) or "unknown"


def model_card(checkpoint_path, ckpt: dict, *, wall_time_s: float, device: str, metrics: dict | None = None) -> dict:
    """The card's content as a JSON-ready dict."""
    from ecgfast import __version__
    from ecgfast.base.checkpoint import checkpoint_spec

    kind = _kind(ckpt)
    config = _plain(ckpt.get("config") or {})
    try:
        spec = checkpoint_spec(ckpt, checkpoint_path)
    except Exception:  # a card is still written for a checkpoint without a usable spec
        spec = _plain(ckpt.get("spec"))
    data = _plain(ckpt.get("data") or {})
    encoder, encoder_parameters = _encoder(ckpt, checkpoint_path, spec)
    if metrics is None:
        metrics = ckpt.get("metrics")
    card = {
        "card_version": CARD_VERSION,
        "checkpoint": str(checkpoint_path),
        "name": Path(checkpoint_path).name,
        "kind": kind,
        "method": config.get("method") or config.get("mode") or "unknown",
        "encoder": encoder,
        "encoder_parameters": encoder_parameters,
        "format_version": ckpt.get("format_version", 1),
        "classes": _plain(ckpt.get("classes")),
        "thresholds": _plain(ckpt.get("thresholds")) if kind == "classifier" else None,
        "data": {"corpora": data.get("corpora", []), "records_seen": data.get("records_seen")},
        "config": config,
        "metrics": _plain(metrics),
        "preprocessing": _plain(spec),
        "versions": _plain(ckpt.get("versions") or {}),
        "card_written_by": f"ecgfast {__version__}",
        "wall_time_s": _plain(float(wall_time_s)) if wall_time_s is not None else None,
        "device": str(device),
        "intended_use": _INTENDED.get(kind, _INTENDED["encoder"]),
        "limitations": _limitations(card_data=data, spec=spec),
    }
    return card


def _encoder(ckpt: dict, path, spec: Any) -> tuple[str | None, int | None]:
    """The backbone's name (``ecg1dcnn`` for checkpoints that name none) and its parameter count."""
    from ecgfast.models.backbones import build_encoder, count_parameters
    from ecgfast.models.pretrained import encoder_of

    try:
        name = encoder_of(ckpt, path)
    except Exception:  # a name this ecgfast does not know: reported as stored, uncounted
        stored = ckpt.get("spec") if isinstance(ckpt.get("spec"), dict) else {}
        return (str(stored["encoder"]) if stored.get("encoder") else None), None
    leads = spec.get("leads") if isinstance(spec, dict) else None
    return name, count_parameters(build_encoder(name, in_ch=len(leads) if leads else 12))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and v and all(isinstance(t, float) for t in v):
        return "[" + ", ".join(f"{t:.4g}" for t in v) + "]"
    if isinstance(v, (dict, list)):
        return "`" + json.dumps(v) + "`"
    return "—" if v is None else str(v)


def _duration(s: float | None) -> str:
    if s is None:
        return "—"
    h, rem = divmod(float(s), 3600)
    m, sec = divmod(rem, 60)
    return (f"{int(h)} h {int(m)} min" if h else f"{int(m)} min {sec:.0f} s" if m else f"{sec:.1f} s") + \
        f" ({s:.1f} s)"


def _metric_rows(metrics: dict) -> list[str]:
    """Rows ``| metric | value | 95 % CI |`` from ``evaluate``'s result (``ci95``: {metric: [lo, hi]}) or
    nested ``{metric: {value|mean, ci|ci95: [lo, hi]}}``; per-class tables where present."""
    ci = metrics.get("ci95") or metrics.get("ci") or {}
    rows = []
    for k, v in metrics.items():
        if k in ("ci95", "ci", "per_class", "y_true", "y_prob", "classes", "checkpoint", "n_records"):
            continue
        if isinstance(v, dict) and any(x in v for x in ("value", "mean", "point")):
            val = next(v[x] for x in ("value", "mean", "point") if x in v)
            lo_hi = v.get("ci95") or v.get("ci")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            val, lo_hi = v, ci.get(k) if isinstance(ci, dict) else None
        else:
            continue
        interval = f"[{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]" if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2 \
            and all(isinstance(t, (int, float)) for t in lo_hi) else "—"
        rows.append(f"| {k} | {_fmt(val) if not isinstance(val, float) else f'{val:.4f}'} | {interval} |")
    return rows


def render_card(card: dict) -> str:
    """The Markdown card."""
    c = card
    lines = [f"# Model card: {c['name']}", "",
             f"An ecgfast **{c['kind']}** checkpoint trained with **{c['method']}** "
             f"(checkpoint format {c['format_version']}).", "",
             f"Encoder (backbone): **{c.get('encoder') or 'unknown'}**"
             + (f", {c['encoder_parameters']:,} parameters." if c.get("encoder_parameters") else "."), "",
             "## Intended use", "", c["intended_use"], "",
             "## Limitations", ""]
    lines += [f"- {t}" for t in c["limitations"]]
    lines += ["", "## Data", ""]
    corpora = c["data"]["corpora"] or []
    if corpora:
        lines += ["| corpus | records | fingerprint | path |", "|---|---|---|---|"]
        lines += [f"| {d.get('name', '—')} | {d.get('records', '—')} | {_fmt(d.get('fingerprint'))} | "
                  f"{d.get('path', '—')} |" for d in corpora]
    else:
        lines.append("No corpus information stored in the checkpoint.")
    lines += ["", f"Records seen in training: {_fmt(c['data']['records_seen'])}."]
    if c.get("classes"):
        lines += ["", f"Classes: {', '.join(c['classes'])}."]
    if c.get("thresholds"):
        lines += ["", "Decision thresholds (chosen on fold 9): " + ", ".join(
            f"{k} {t:.3f}" for k, t in zip(c["classes"] or [], c["thresholds"])) + "."]
    lines += ["", "## Evaluation", ""]
    m = c.get("metrics")
    if m:
        rows = _metric_rows(m)
        n = m.get("n_records")
        if n:
            lines += [f"Fold 10 (test), {n} labelled records; 95 % bootstrap confidence intervals.", ""]
        lines += ["| metric | value | 95 % CI |", "|---|---|---|"] + (rows or ["| — | — | — |"])
        per_class = m.get("per_class")
        if isinstance(per_class, dict) and per_class:
            cols = [k for k in next(iter(per_class.values())) if k not in ("ci95", "ci")]
            lines += ["", "| class | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            lines += [f"| {cls} | " + " | ".join(_fmt(v.get(k)) for k in cols) + " |"
                      for cls, v in per_class.items()]
    elif c["kind"] == "classifier":
        lines.append("Not evaluated on fold 10 in this run (`ecgfast evaluate --checkpoint ...` reports it with "
                     "bootstrap CIs).")
    else:
        lines.append("Not evaluated (an encoder is evaluated through fine-tuning or a linear probe; see "
                     "`ecgfast experiment`).")
    s = c.get("preprocessing") or {}
    lines += ["", "## Preprocessing (input contract)", ""]
    if s:
        norm = s.get("normalizer") or {}
        lines += [f"- sampling rate: {s.get('sampling_rate')} Hz; window: {s.get('signal_length')} samples",
                  f"- leads, in order: {', '.join(s.get('leads') or [])}",
                  f"- units: {s.get('units')}",
                  f"- normalisation: (x − mean) / std, {'per lead' if norm.get('per_lead') else 'global'}; "
                  f"mean {_fmt(norm.get('mean'))}, std {_fmt(norm.get('std'))}"]
    else:
        lines.append("Not stored.")
    lines += ["", "## Training run", "",
              f"- wall time: {_duration(c.get('wall_time_s'))}",
              f"- device: {c.get('device')}", "",
              "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(c["config"].items())]
    lines += ["", "## Software", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(c["versions"].items())]
    lines += ["", f"_Card written by {c['card_written_by']}; the same content is in "
                  f"`{Path(c['name']).stem}.card.json`._", ""]
    return "\n".join(lines)


def write_model_card(checkpoint_path, ckpt: dict, *, wall_time_s: float, device: str,
                     metrics: dict | None = None) -> tuple[Path, Path]:
    """Write ``OUT.card.md`` and ``OUT.card.json`` beside ``checkpoint_path`` (atomically); returns both paths.

    ``ckpt`` is the checkpoint dict just saved; ``metrics`` the fold-10 result
    (``ecgfast.evaluate``'s dict, with ``ci95``) where the run evaluated one,
    else ``ckpt["metrics"]`` if present.
    """
    from ecgfast.base.fs import atomic_write

    card = model_card(checkpoint_path, ckpt, wall_time_s=wall_time_s, device=device, metrics=metrics)
    if card["metrics"]:
        card["metrics"] = {k: v for k, v in card["metrics"].items() if k not in ("y_true", "y_prob")}
    md_path, json_path = card_paths(checkpoint_path)
    text_json = json.dumps(card, indent=2, allow_nan=False) + "\n"
    text_md = render_card(card)
    atomic_write(json_path, lambda f: f.write(text_json), mode="w")
    atomic_write(md_path, lambda f: f.write(text_md), mode="w")
    return md_path, json_path
