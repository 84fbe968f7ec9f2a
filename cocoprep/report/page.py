"""The report's HTML: one self-contained page, a function per section.

Every number a test or a script may want to check sits in an element with a
`data-key` attribute (`train.examples`, `train.class.person.objects`, ...). The
page loads nothing: a Content-Security-Policy forbids every request except the
`data:` images it holds, and it runs no script.
"""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

from cocoprep import schema
from cocoprep.inspection import human_bytes
from cocoprep.report import plots
from cocoprep.report.model import ReportData

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#cfd8dc}
nav{padding:6px 24px;background:#eceff1;position:sticky;top:0}
nav a{margin-right:14px;color:#37474f;text-decoration:none}
main{padding:0 24px 40px;max-width:1200px}
section{margin-top:28px}h2{border-bottom:2px solid #cfd8dc;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eceff1}
.flag{color:#b71c1c;font-weight:600}.ok{color:#1b5e20;font-weight:600}
.problems{background:#ffebee;border:1px solid #e57373;padding:8px 16px;margin-top:16px}
.note{color:#555}img{max-width:100%}pre{background:#263238;color:#eceff1;padding:10px;
overflow-x:auto}.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.thumb{width:96px;height:96px;object-fit:contain;background:#ddd;vertical-align:middle;
margin-right:8px}ul.items{list-style:none;padding:0;margin:0}
"""
SECTIONS = (("summary", "Summary"), ("classes", "Classes"), ("boxes", "Boxes"),
            ("images", "Images"), ("segmentation", "Segmentation"), ("skipped", "Skipped"),
            ("examples", "Examples"), ("leakage", "Leakage"), ("use", "Use it"))


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(key: str, value: int | float | str) -> str:
    """A table cell holding a number the page is tested on."""
    text = f"{value:,}" if isinstance(value, int) else esc(value)
    return f'<td class="n" data-key="{esc(key)}">{text}</td>'


def table(head: Iterable[str], rows: Iterable[str]) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table><tr>{cells}</tr>{''.join(f'<tr>{r}</tr>' for r in rows)}</table>"


def img(uri: str, alt: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} src="{uri}" alt="{esc(alt)}">'


# ------------------------------------------------------------------ sections

def summary(d: ReportData) -> str:
    det = d.task == "detection"
    head = ["split", "images"] + (["objects", "crowd", "difficult"] if det else []) + [
        "classes present", "shards", "bytes", "skipped"]
    rows = []
    for split, e in d.entries.items():
        s = d.stats[split]
        present = sum(1 for v in e["classes"].values() if v) if d.task != "segmentation" else \
            int((s.pixels[:schema.VOID_ID] > 0).sum())
        cells = [f"<td>{esc(split)}</td>", num(f"{split}.examples", e["examples"])]
        if det:
            cells += [num(f"{split}.objects", e["objects"]), num(f"{split}.crowd", e["crowd"]),
                      num(f"{split}.difficult", s.difficult)]
        skipped = e["skipped"]
        cells += [num(f"{split}.classes_present", present),
                  num(f"{split}.shards", e["shards"]["count"]),
                  num(f"{split}.bytes", e["shards"]["total_bytes"]),
                  num(f"{split}.skipped", sum(skipped.values())) if skipped is not None
                  else "<td>unknown (no manifest)</td>"]
        rows.append("".join(cells))
    total = sum(e["shards"]["total_bytes"] for e in d.entries.values())
    n_classes = len(d.class_names) if d.task != "segmentation" else len(
        {i for s in d.stats.values() for i in s.pixels[:schema.VOID_ID].nonzero()[0].tolist()})
    parts = [f"<p>{esc(d.task)} records, {len(d.entries)} split(s), "
             f"{sum(e['examples'] for e in d.entries.values()):,} images, "
             f"{n_classes} classes, {human_bytes(total)} of shards.</p>",
             _glance(d), table(head, rows), _verify(d), _options(d)]
    return "".join(parts)


def _glance(d: ReportData) -> str:
    """The few lines a reader should see first: what may be wrong, or that nothing is."""
    flagged = sum(1 for f in d.flags.values() if f)
    skipped = sum(g.count for g in d.skipped.values())
    lines = [(bool(d.leaks), f"{len(d.leaks):,} image(s) in more than one split"),
             (bool(flagged), f"{flagged} class(es) missing from a split or with an uneven share"),
             (bool(skipped), f"{skipped:,} item(s) skipped while converting")]
    if d.task == "detection":
        empty = sum(e["images_without_objects"] for e in d.entries.values())
        lines.append((False, f"{empty:,} image(s) without objects"))
    items = "".join(f'<li class="{"flag" if bad else "ok"}">{"✗" if bad else "✓"} {esc(text)}</li>'
                    for bad, text in lines)
    return f'<ul class="items">{items}</ul>'


def _verify(d: ReportData) -> str:
    v = d.verify
    if v is None:
        return ('<p class="note">verify: not run for this page (`cocoprep report --verify` '
                'runs it; `cocoprep verify` on its own prints every problem).</p>')
    if v.ok:
        return f'<p data-key="verify" class="ok">verify: {esc(v.summary())}</p>'
    items = "".join(f"<li>{esc(p)}</li>" for p in v.problems[:20])
    more = f"<li>... and {len(v.problems) - 20} more</li>" if len(v.problems) > 20 else ""
    return f'<p data-key="verify" class="flag">verify: {esc(v.summary())}</p><ul>{items}{more}</ul>'


def _options(d: ReportData) -> str:
    if d.manifest is None:
        return '<p class="note">A shard glob: no manifest.json, so no options or skip counts.</p>'
    opts = {k: v for k, v in d.manifest.options.items() if v not in (None, False, [], {})}
    rows = [f"<td>{esc(k)}</td><td>{esc(json.dumps(v))}</td>" for k, v in opts.items()]
    src = d.manifest.sources.get("src") or d.manifest.sources.get("images")
    return (f"<p>Written by {esc(d.manifest.created_by or 'cocoprep')} from "
            f"<code>{esc(src)}</code> ({esc(d.manifest.sources.get('layout', ''))}); "
            "options set (manifest.json):</p>" + table(["option", "value"], rows))


def classes(d: ReportData) -> str:
    if d.task == "segmentation":
        return '<p class="note">Semantic masks: see Segmentation for the classes.</p>'
    det = d.task == "detection"
    names = d.class_names
    objects = {split: e["classes"] for split, e in d.entries.items()}
    images = {split: dict(s.images_per_class) for split, s in d.stats.items()}
    units, counts = (["objects", "images"], [objects, images]) if det else (["images"], [objects])
    plot = plots.class_bars(names, d.entries, units, counts)
    head = ["class"] + [f"{split} {u}" for split in d.entries for u in units] + ["flags"]
    rows = []
    for name in names:
        cells = [f"<td>{esc(name)}</td>"]
        for split in d.entries:
            for unit, table_ in zip(units, counts):
                cells.append(num(f"{split}.class.{name}.{unit}", table_[split].get(name, 0)))
        flags = d.flags.get(name, [])
        cells.append(f'<td class="flag">{esc("; ".join(flags))}</td>' if flags else "<td></td>")
        rows.append("".join(cells))
    n_flags = sum(1 for f in d.flags.values() if f)
    note = (f'<p class="flag">{n_flags} class(es) flagged: missing from a split, or a share '
            f'that differs from {esc(d.reference)}\'s by more than {d.share_factor:g}x.</p>'
            if n_flags else f'<p class="ok">Every class is in every split, and no share differs '
                            f'from {esc(d.reference)}\'s by more than {d.share_factor:g}x.</p>')
    return note + img(plot, "objects and images per class and split") + table(head, rows)


def boxes(d: ReportData) -> str:
    st = d.stats
    head = ["split", "small < 32²", "medium", "large ≥ 96²", "crowd", "difficult",
            "images without objects", "objects per image (mean, max)"]
    rows = []
    for split, e in d.entries.items():
        c = st[split].coco_sizes
        rows.append("".join([f"<td>{esc(split)}</td>", num(f"{split}.small", int(c[0])),
                             num(f"{split}.medium", int(c[1])), num(f"{split}.large", int(c[2])),
                             num(f"{split}.crowd_objects", e["crowd"]),
                             num(f"{split}.difficult_objects", st[split].difficult),
                             num(f"{split}.without_objects", e["images_without_objects"]),
                             f"<td>{e['objects_per_image']['mean']:.2f}, "
                             f"{e['objects_per_image']['max']}</td>"]))
    return ("<p>Crowd and difficult objects are counted apart and left out of the plots. "
            "Sizes are in the pixels the boxes were drawn on (before any --max-side).</p>"
            + table(head, rows)
            + img(plots.box_sizes({s: v.rel_size for s, v in st.items()},
                                  {s: v.coco_sizes for s, v in st.items()}), "box sizes")
            + img(plots.aspect_and_counts({s: v.aspect for s, v in st.items()},
                                          {s: v.per_image for s, v in st.items()}),
                  "aspect ratios and objects per image")
            + img(plots.centres({s: v.centres for s, v in st.items()}), "box centres"))


def images(d: ReportData) -> str:
    rows = []
    for split, e in d.entries.items():
        s = d.stats[split]
        w, h = e["image_width"], e["image_height"]
        rows.append("".join([
            f"<td>{esc(split)}</td>",
            f"<td>{w['min']}..{w['max']} x {h['min']}..{h['max']}</td>" if e["examples"]
            else "<td>-</td>",
            num(f"{split}.distinct_sizes", len(s.sizes)),
            f"<td>{esc(', '.join(f'{k} {v:,}' for k, v in sorted(s.formats.items())))}</td>",
            f"<td>{esc(', '.join(f'{k} {v:,}' for k, v in sorted(s.channels.items())))}</td>"]))
    plot = plots.image_sizes({split: dict(s.sizes) for split, s in d.stats.items()})
    return (table(["split", "width x height", "distinct sizes", "formats",
                   "channels (L 1, LA 2, RGB 3, RGBA / CMYK 4, P palette)"], rows)
            + img(plot, "image sizes"))


def segmentation(d: ReportData) -> str:
    ids = sorted({i for s in d.stats.values() for i in map(int, s.pixels.nonzero()[0])})
    names = [d.seg_names.get(i, f"id {i}") for i in ids]
    shares: dict[str, list[float]] = {}
    rows = []
    for split, s in d.stats.items():
        total = int(s.pixels.sum()) or 1
        shares[split] = [s.pixels[i] / total for i in ids]
    for i, name in zip(ids, names):
        rows.append(f"<td>{esc(name)}</td>" + "".join(
            num(f"{split}.pixels.{name}", f"{100 * s.pixels[i] / (int(s.pixels.sum()) or 1):.2f}%")
            for split, s in d.stats.items()))
    return ("<p>Each class's share of the pixels of the masks (void included where the masks "
            "hold it).</p>" + img(plots.pixel_shares(names, shares), "pixel shares")
            + table(["class"] + [f"{s} pixels" for s in d.stats], rows))


def skipped(d: ReportData) -> str:
    if d.manifest is None:
        return '<p class="note">A shard glob: no skipped.jsonl to read.</p>'
    if not d.skipped:
        return '<p class="ok">Nothing was skipped.</p>'
    rows = []
    for (split, reason), group in d.skipped.items():
        items = "".join(
            f"<li>{img(item['thumb'], item.get('file') or '', 'thumb') if item.get('thumb') else ''}"
            f"{esc(item.get('file') or item.get('image_id'))}: {esc(item.get('detail', ''))}</li>"
            for item in group.first)
        rows.append(f"<td>{esc(split)}</td><td>{esc(reason)}</td>"
                    + num(f"{split}.skipped.{reason}", group.count)
                    + f'<td><ul class="items">{items}</ul></td>')
    return ("<p>Every reason in skipped.jsonl with its count and the first items "
            "(a thumbnail where the source image could be read).</p>"
            + table(["split", "reason", "count", "first items"], rows))


def examples(d: ReportData) -> str:
    if d.examples_uri is None:
        return f'<p class="note">{esc(d.examples_note)}</p>'
    return (f"<p>{esc(d.examples_note)}</p>"
            + img(d.examples_uri, "examples with their labels drawn"))


def leakage(d: ReportData) -> str:
    n = len(d.leaks)
    head = (f'<p class="{"flag" if n else "ok"}"><span data-key="leaks">{n:,}</span> image(s) '
            "whose content (sha256) is in more than one split.</p>")
    rows = [f"<td><code>{esc(sha[:16])}</code></td><td>"
            + esc("; ".join(f"{s}: {f}" for s, f in where.items())) + "</td>"
            for sha, where in d.leaks[:50]]
    return head + (table(["sha256", "where"], rows) if rows else "")


def use(d: ReportData) -> str:
    return "".join(f"<p>{esc(title)}</p><pre>{esc(code)}</pre>" for title, code in d.use_lines)


_RENDER = {"summary": summary, "classes": classes, "boxes": boxes, "images": images,
           "segmentation": segmentation, "skipped": skipped, "examples": examples,
           "leakage": leakage, "use": use}


_ONLY_FOR = {"boxes": "detection", "segmentation": "segmentation"}


def render_page(d: ReportData) -> str:
    """The page; sections of another task (boxes of a classification output) are left out."""
    sections = [(key, title) for key, title in SECTIONS if _ONLY_FOR.get(key, d.task) == d.task]
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in sections)
    problems = ""
    if d.problems:
        items = "".join(f"<li>{esc(p)}</li>" for p in d.problems[:50])
        problems = (f'<div class="problems" id="problems"><strong>{len(d.problems)} problem(s): '
                    "the numbers below cover only what could be read.</strong>"
                    f"<ul>{items}</ul></div>")
    body = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{_RENDER[key](d)}</section>'
                   for key, title in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>cocoprep report: {esc(d.path)}</title><style>{_STYLE}</style></head><body>"
            f"<header><h1>cocoprep report: {esc(d.path)}</h1><p>{esc(d.task)} records; "
            "made by <code>cocoprep report</code> from the records themselves.</p></header>"
            f"<nav>{nav}</nav><main>{problems}{body}</main></body></html>\n")
