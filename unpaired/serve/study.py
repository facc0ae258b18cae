"""A blinded A/B study of several runs, as the seeds' user studies ("which is more realistic: A, B or not sure?"):
lay it out (``create_study``), keep its votes (``VoteStore``), and report the preferences (``write_report``).

A study is one folder:

- ``study.json``: the question, the runs, the inputs and the pairs in their shown order. Every pair is one
  input translated by two runs, on a random side each; every image of a pair is named by an opaque random
  token of its own, and the runs are known only here, on the server;
- ``images/``: the inputs and translations, under random file names;
- ``votes.sqlite``: the rater tokens and the votes (SQLite in WAL mode, each vote committed and synced before it
  is acknowledged, one vote per rater and pair by a UNIQUE constraint);
- ``raters.txt``: the rater links' tokens, one a line, to hand out.

The results key is printed once at creation; the folder keeps its SHA-256 only.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import random
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from unpaired.io import atomic_json, atomic_write

FORMAT = 1
CHOICES = ("left", "right", "unsure")
Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


class StudyError(ValueError):
    """A study folder or study option that cannot be used; the message names it."""


def new_token() -> str:
    """An unguessable URL-safe token (128 random bits)."""
    return secrets.token_urlsafe(16)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# -- the votes --------------------------------------------------------------------------------------------------
class VoteStore:
    """Rater tokens and votes in SQLite (WAL, synchronous=FULL: a vote whose ``vote`` call returned is on disk and
    survives the server being killed). One connection, used under a lock, from any thread."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS raters (token TEXT PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS votes (
        rater TEXT NOT NULL REFERENCES raters(token),
        pair TEXT NOT NULL,
        choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'unsure')),
        at REAL NOT NULL,
        UNIQUE (rater, pair)
    );
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(self.SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def add_raters(self, tokens: list[str]) -> None:
        with self.lock, self.db:
            self.db.executemany("INSERT INTO raters (token) VALUES (?)", [(t,) for t in tokens])

    def is_rater(self, token: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM raters WHERE token = ?", (token,)).fetchone() is not None

    def vote(self, rater: str, pair: str, choice: str) -> bool:
        """Record and commit one vote; False (and nothing changed) when this rater already voted on this pair. A
        token that is no rater's is refused by the schema's foreign key."""
        if choice not in CHOICES:
            raise StudyError(f"a vote is one of {', '.join(CHOICES)}, not '{choice[:20]}'")
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("INSERT INTO votes (rater, pair, choice, at) VALUES (?, ?, ?, ?)",
                                (rater, pair, choice, time.time()))
                self.db.execute("COMMIT")
            except sqlite3.IntegrityError as err:
                self.db.execute("ROLLBACK")
                if "UNIQUE" in str(err):
                    return False
                raise StudyError(f"'{rater[:30]}' is not a rater of this study") from err  # the foreign key
        return True

    def voted_pairs(self, rater: str) -> set[str]:
        with self.lock:
            return {row[0] for row in self.db.execute("SELECT pair FROM votes WHERE rater = ?", (rater,))}

    def votes(self) -> list[tuple[str, str]]:
        """Every vote as (pair id, choice)."""
        with self.lock:
            return list(self.db.execute("SELECT pair, choice FROM votes ORDER BY rowid"))


# -- the layout -------------------------------------------------------------------------------------------------
@dataclass
class Study:
    folder: Path
    question: str
    runs: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    key_sha256: str
    seed: int
    images: dict[str, Path] = field(default_factory=dict)
    """Public token -> image file, for every image of every pair."""

    @classmethod
    def open(cls, folder: Path) -> Study:
        path = Path(folder) / "study.json"
        if not path.is_file():
            raise StudyError(f"{folder}: not a study folder (no study.json; make one with `unpaired study create`)")
        try:
            record = json.loads(path.read_text())
            if record.get("format") != FORMAT:
                raise StudyError(f"{path}: study format {record.get('format')} is not {FORMAT}")
            study = cls(Path(folder), record["question"], record["runs"], record["pairs"], record["key_sha256"],
                        record["seed"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise StudyError(f"{path}: not a valid study file ({err})") from err
        study.images = {pair[side]["token"]: study.folder / pair[side]["image"]
                        for pair in study.pairs for side in ("input", "left", "right")}
        return study

    @property
    def pair_index(self) -> dict[str, dict[str, Any]]:
        return {pair["id"]: pair for pair in self.pairs}

    def key_matches(self, key: str) -> bool:
        return hmac.compare_digest(key_digest(key), self.key_sha256)

    def store(self) -> VoteStore:
        return VoteStore(self.folder / "votes.sqlite")


@dataclass
class CreatedStudy:
    study: Study
    key: str
    raters: list[str]


def lay_out_pairs(inputs: int, runs: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """(input, left run, right run) for every input and every two runs, each on a random side, in random order."""
    pairs = []
    for i in range(inputs):
        for first, second in itertools.combinations(range(runs), 2):
            pairs.append((i, first, second) if rng.random() < 0.5 else (i, second, first))
    rng.shuffle(pairs)
    return pairs


def run_labels(translators: list[Any], runs: list[Path]) -> list[str]:
    """'method (run folder)' for each run; a label that repeats gets its position added."""
    labels = [f"{t.config.method} ({(r if r.is_dir() else r.parent.parent).name})" for t, r in zip(translators, runs,
                                                                                                   strict=True)]
    return [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _save_image(image: Image.Image, folder: Path) -> str:
    """Save under a random file name; return the name relative to the study folder."""
    name = f"images/{secrets.token_hex(16)}.png"
    atomic_write(folder / name, lambda handle: image.save(handle, format="PNG"))
    return name


def create_study(runs: list[Path], inputs: Path, question: str, out: Path, seed: int | None = None,
                 raters: int = 10, direction: str = "a2b", size: int | None = None, device: str = "auto",
                 progress: bool = True) -> CreatedStudy:
    """Translate every image of ``inputs`` with every run and lay out the blinded pairs in ``out``."""
    from tqdm import tqdm

    from unpaired.data import list_images
    from unpaired.inference import load

    if len(runs) < 2:
        raise StudyError("a study compares at least two runs; give --runs RUN1 RUN2 [...]")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"{out}: exists and is not an empty folder; choose a new --out")
    if not question.strip():
        raise StudyError("--question: give the question raters answer, e.g. 'Which looks more like a zebra?'")
    files, _ = list_images(inputs)
    if not files:
        raise StudyError(f"{inputs}: no images (.png .jpg .jpeg .bmp .webp) in this folder")
    translators = [load(run, device=device) for run in runs]
    for run, translator in zip(runs, translators, strict=True):
        if direction not in translator.method.directions:
            raise StudyError(f"{run}: this {translator.config.method} model translates "
                             f"{', '.join(translator.method.directions)} only, not {direction}")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    size = size or translators[0].image_size
    out.mkdir(parents=True, exist_ok=True)
    shown_inputs, translations = [], []  # translations[i][r]: image file of input i by run r
    work = tqdm(total=len(files) * len(runs), desc="study: translate", unit="img", disable=not progress)
    for i, path in enumerate(files):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        scale = size / min(image.size)
        shown_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        shown_inputs.append(_save_image(image.resize(shown_size, Image.BICUBIC), out))
        row = []
        for translator in translators:
            # a method that draws a style draws it from the study's seed, the same for every run of it
            options = {"seed": seed + i} if "seed" in translator.method.translate_options else {}
            try:
                result = translator.translate_image(image, direction, size=size, **options)[0]
            except ValueError as err:
                raise StudyError(f"{path}: a {translator.config.method} run cannot translate it here ({err})") from err
            # every run's image at the same size, so that no size tells the runs apart
            row.append(_save_image(result.convert("RGB").resize(shown_size, Image.BICUBIC), out))
            work.update()
        translations.append(row)
    work.close()
    rng = random.Random(seed)
    pairs = [{"id": new_token(), "input_index": i, "left_run": left, "right_run": right,
              "input": {"token": new_token(), "image": shown_inputs[i]},
              "left": {"token": new_token(), "image": translations[i][left]},
              "right": {"token": new_token(), "image": translations[i][right]}}
             for i, left, right in lay_out_pairs(len(files), len(runs), rng)]
    key = secrets.token_urlsafe(24)
    labels = run_labels(translators, runs)
    record = {
        "format": FORMAT, "question": question.strip(), "seed": seed, "direction": direction, "size": size,
        "runs": [{"label": label, "method": t.config.method, "path": str(run.resolve()), "step": t.step}
                 for label, t, run in zip(labels, translators, runs, strict=True)],
        "inputs": [{"name": path.name, "image": shown} for path, shown in zip(files, shown_inputs, strict=True)],
        "pairs": pairs, "key_sha256": key_digest(key), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rater_tokens = [new_token() for _ in range(raters)]
    store = VoteStore(out / "votes.sqlite")
    store.add_raters(rater_tokens)
    store.close()
    atomic_write(out / "raters.txt", lambda handle: handle.write("".join(f"{t}\n" for t in rater_tokens).encode()))
    atomic_json(out / "study.json", record)  # last: a folder without it is no study
    return CreatedStudy(Study.open(out), key, rater_tokens)


# -- the report -------------------------------------------------------------------------------------------------
def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval of a binomial share (sound near 0 and 1 and for few trials, unlike the normal
    approximation); (0, 1) for no trials."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    middle = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, middle - half), min(1.0, middle + half)


@dataclass
class Preference:
    """The votes of the pairs between two runs: ``first`` is preferred ``first_wins`` times, ``second``
    ``second_wins`` times, and raters were not sure ``unsure`` times."""

    first: str
    second: str
    first_wins: int = 0
    second_wins: int = 0
    unsure: int = 0

    @property
    def decided(self) -> int:
        return self.first_wins + self.second_wins

    @property
    def votes(self) -> int:
        return self.decided + self.unsure

    @property
    def share(self) -> float | None:
        """The share of decided votes that prefer ``first`` ("not sure" left out), None without any."""
        return self.first_wins / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.first_wins, self.decided)


def preferences(study: Study, votes: list[tuple[str, str]]) -> list[Preference]:
    """One ``Preference`` per two runs (in run order), from the votes."""
    labels = [run["label"] for run in study.runs]
    table = {(a, b): Preference(labels[a], labels[b]) for a, b in itertools.combinations(range(len(labels)), 2)}
    index = study.pair_index
    for pair_id, choice in votes:
        pair = index.get(pair_id)
        if pair is None:
            continue  # cannot happen through the server, which refuses unknown pairs
        left, right = pair["left_run"], pair["right_run"]
        row = table[(min(left, right), max(left, right))]
        if choice == "unsure":
            row.unsure += 1
        elif (left if choice == "left" else right) == min(left, right):
            row.first_wins += 1
        else:
            row.second_wins += 1
    return list(table.values())


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def markdown_report(study: Study, rows: list[Preference]) -> str:
    lines = [f"# Study: {study.question}", "",
             f"{len(study.runs)} runs, {len(study.pairs)} pairs, {sum(r.votes for r in rows)} votes.", "",
             "| A | B | A preferred | 95 % interval (Wilson) | B preferred | A / B / not sure | votes |",
             "| --- | --- | ---: | --- | ---: | --- | ---: |"]
    for r in rows:
        low, high = r.interval
        interval = f"{100 * low:.1f}-{100 * high:.1f} %" if r.decided else "n/a"
        second = None if r.share is None else 1 - r.share
        lines.append(f"| {r.first} | {r.second} | {_percent(r.share)} | {interval} | {_percent(second)} | "
                     f"{r.first_wins} / {r.second_wins} / {r.unsure} | {r.votes} |")
    lines += ["", "\"A preferred\" is the share of the decided votes (A or B) that chose A; \"not sure\" votes are "
              "counted in the last columns and left out of the share and its interval. The interval is Wilson's "
              "score interval at 95 % for that share (B's share is 1 minus A's, its interval the mirror image).",
              "", "Runs:", ""]
    lines += [f"- {run['label']}: {run['path']} (step {run['step']})" for run in study.runs]
    return "\n".join(lines) + "\n"


def bar_chart(rows: list[Preference], title: str) -> Image.Image:
    """One horizontal bar per two runs: A's share of the decided votes (left, blue) against B's (right, orange),
    with the 95 % interval as a whisker and the 50 % line."""
    font = ImageFont.load_default()
    label_width, bar_width, row_height, top = 300, 420, 44, 40
    image = Image.new("RGB", (label_width + bar_width + 140, top + row_height * len(rows) + 30), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), title[:110], fill="black", font=font)
    for k, r in enumerate(rows):
        y = top + k * row_height
        draw.text((10, y + 6), f"A: {r.first}"[:48], fill="black", font=font)
        draw.text((10, y + 20), f"B: {r.second}"[:48], fill="black", font=font)
        left, right = label_width, label_width + bar_width
        if r.share is None:
            draw.rectangle([left, y + 8, right, y + 32], outline="gray")
            draw.text((right + 10, y + 14), "no votes", fill="gray", font=font)
            continue
        split = left + round(bar_width * r.share)
        draw.rectangle([left, y + 8, split, y + 32], fill=(66, 133, 244))
        draw.rectangle([split, y + 8, right, y + 32], fill=(244, 160, 66))
        low, high = (left + round(bar_width * v) for v in r.interval)
        draw.line([low, y + 20, high, y + 20], fill="black", width=2)
        for x in (low, high):
            draw.line([x, y + 14, x, y + 26], fill="black", width=2)
        draw.text((right + 10, y + 8), f"A {_percent(r.share)}", fill="black", font=font)
        draw.text((right + 10, y + 22), f"{r.votes} votes ({r.unsure} not sure)", fill="black", font=font)
    middle = label_width + bar_width // 2
    draw.line([middle, top - 4, middle, top + row_height * len(rows)], fill="gray", width=1)
    draw.text((label_width, top + row_height * len(rows) + 8),
              "A's share of decided votes; whisker: 95 % Wilson interval; line: 50 %", fill="gray", font=font)
    return image


def write_report(study: Study, out: Path) -> dict[str, Path]:
    """report.md, report.png and report.json of the study's votes so far, in ``out`` (replacing earlier ones)."""
    store = study.store()
    try:
        rows = preferences(study, store.votes())
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "chart": out / "report.png", "json": out / "report.json"}
    text = markdown_report(study, rows).encode()
    atomic_write(paths["markdown"], lambda handle: handle.write(text))
    atomic_write(paths["chart"], lambda handle: bar_chart(rows, study.question).save(handle, format="PNG"))
    atomic_json(paths["json"], {"question": study.question, "interval": "Wilson score, 95 %, decided votes",
                                "rows": [{**vars(r), "share": r.share, "interval": r.interval} for r in rows]})
    return paths
