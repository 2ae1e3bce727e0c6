"""Fuzzing Bundle.load: every damaged bundle is a named refusal or a load that is harmless.

Four generators, each on a fresh copy of the smoke-trained point bundle: structured manifest
mutations (a value replaced, a key dropped or added, anywhere in the tree), truncations of
any file, graphs and parameter files swapped for one another, and hostile YAML (anchors,
aliases, tags, merge keys, duplicates, deep nesting, other encodings, random bytes). Most
cases are re-locked and re-hashed, as a bad export would leave them, so the reader's own
checks are what is tested, not only the hashes.

The outcome of each case is either a :class:`BundleError` (any other exception fails the test)
or a bundle that loads and is harmless: its action bounds are finite with ``low < high``, and
an :class:`OnlineAdapter` on it answers finite, in-bounds actions to good and bad
observations and swallows bad ``observe()`` calls.

The default budget is small (a few seconds in all). ``ADAPT_ROBOT_FUZZ_EXAMPLES=N`` runs ``N``
examples per generator; ``ADAPT_ROBOT_FUZZ_LOG=PATH`` appends one line per case
(generator, case, outcome, message) for a report.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapt_robot.runtime import Bundle, BundleError, OnlineAdapter, sha256_file
from tests.runtime.conftest import read_manifest, relock

EXAMPLES = int(os.environ.get("ADAPT_ROBOT_FUZZ_EXAMPLES", "12"))
LOG = os.environ.get("ADAPT_ROBOT_FUZZ_LOG")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FILES = ("manifest.yaml", "bundle.lock", "params.npz", "policy.onnx", "adapt_step.onnx")

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 4, 10**6, 10**30, -(10**30)]),
    st.sampled_from([math.nan, math.inf, -math.inf, 1.5, -0.5, 1e308, -1e308, 5e-324, 0.0]),
    st.sampled_from(["", "no", "yes", "../policy.onnx", "/etc/hostname", "a" * 300, "1.0"]),
    st.sampled_from(  # the names of the memory kinds and their fields
        ["posterior", "recurrent", "none", "prior_sample", "prior_mean", "meta", "context"]
    ),
    st.sampled_from(["encoder.onnx", "adapt_step.onnx", "enc.l0.w", "z_mean", "rew"]),
    st.text(max_size=12),
    st.lists(st.sampled_from([0, 1.0, "x", None, math.nan]), max_size=4),
    st.dictionaries(st.sampled_from(["a", "files", "l0.w"]), st.integers(-2, 2), max_size=2),
)


@contextmanager
def bundle_copy(source: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        yield Path(shutil.copytree(source, Path(tmp) / "b"))


def record(generator: str, case: str, outcome: str, message: str = "") -> None:
    if LOG:
        with open(LOG, "a") as fh:
            fh.write(f"{generator}\t{case}\t{outcome}\t{' '.join(message.split())[:160]}\n")


def harmless(bundle: Bundle) -> None:
    """A loaded bundle cannot make the adapter send a bad action or raise on bad input."""
    low, high = bundle.action_low, bundle.action_high
    assert np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)
    dim = bundle.manifest.observation.dim
    observations = [np.zeros(dim), np.full(dim, 1e6), np.full(dim, np.nan), np.zeros(dim + 1)]
    with OnlineAdapter(bundle, auto_adapt=False, seed=0) as adapter:
        for obs in observations:
            a = adapter.act(obs)
            assert a.shape == low.shape and np.all(np.isfinite(a))
            assert np.all(a >= low) and np.all(a <= high)
            adapter.observe(math.nan, done="no")  # type: ignore[arg-type]


def outcome(bundle_dir: Path, generator: str, case: str) -> str:
    """``refused`` (a BundleError) or ``harmless``; anything else fails the test."""
    try:
        bundle = Bundle.load(bundle_dir)
    except BundleError as err:
        record(generator, case, "refused", str(err).split(": ", 1)[-1])
        return "refused"
    harmless(bundle)
    record(generator, case, "harmless")
    return "harmless"


def draw_path(data: st.DataObject, tree: Any) -> list[Any]:
    """A path from the root of ``tree`` to some node (drawn step by step)."""
    path: list[Any] = []
    node = tree
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if path and data.draw(st.booleans(), label="stop here"):
            break
        key = data.draw(st.sampled_from(keys), label="key")
        path.append(key)
        node = node[key]
    return path


def mutate(data: st.DataObject, manifest: dict[str, Any]) -> str:
    """Change ``manifest`` in place at a drawn path; returns a description of the change."""
    path = draw_path(data, manifest)
    if not path:
        return "unchanged"
    parent: Any = manifest
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    where = ".".join(str(k) for k in path)
    action = data.draw(st.sampled_from(["replace", "delete", "add_key"]), label="action")
    if action == "delete":
        del parent[last]
    elif action == "add_key" and isinstance(parent, dict):
        parent["surprise"] = data.draw(HOSTILE_VALUES, label="value")
        return f"add surprise beside {where}"
    else:
        parent[last] = data.draw(HOSTILE_VALUES, label="value")
        return f"replace {where} = {parent[last]!r}"[:120]
    return f"delete {where}"


@FUZZ
@given(data=st.data())
def test_structured_manifest_mutations(point_bundle: Path, data: st.DataObject) -> None:
    with bundle_copy(point_bundle) as b:
        manifest = read_manifest(b)
        files = list(manifest["files"])
        case = mutate(data, manifest)
        (b / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        relock(b, files)  # as a bad export would: only the reader's checks stand in the way
        outcome(b, "mutation", case)


POSTERIOR_SECTIONS = ("memory", "inner_loop", "graphs", "parameters", "policy")
"""Where a posterior (PEARL) manifest's own relations live."""


@FUZZ
@given(data=st.data())
def test_structured_mutations_of_a_posterior_manifest(
    pearl_bundle: Path, data: st.DataObject
) -> None:
    with bundle_copy(pearl_bundle) as b:
        manifest = read_manifest(b)
        files = list(manifest["files"])
        section = data.draw(st.sampled_from(POSTERIOR_SECTIONS), label="section")
        case = f"{section}: {mutate(data, manifest[section])}"
        (b / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        relock(b, files)
        outcome(b, "posterior mutation", case)


@FUZZ
@given(
    target=st.sampled_from(["policy.onnx", "encoder.onnx", "params.npz"]),
    source=st.sampled_from(["policy.onnx", "encoder.onnx", "params.npz", "policy_frozen.onnx"]),
)
def test_swapped_files_of_a_posterior_bundle(pearl_bundle: Path, target: str, source: str) -> None:
    with bundle_copy(pearl_bundle) as b:
        shutil.copyfile(pearl_bundle / source, b / target)
        manifest = read_manifest(b)
        manifest["files"] = {n: sha256_file(b / n) for n in manifest["files"]}
        (b / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        relock(b, list(manifest["files"]))
        seen = outcome(b, "posterior swap", f"{source} -> {target}")
        assert seen == ("harmless" if source == target else "refused")


def test_the_posterior_bundle_itself_is_harmless(pearl_bundle: Path) -> None:
    assert outcome(pearl_bundle, "posterior", "as exported") == "harmless"


@FUZZ
@given(
    name=st.sampled_from(FILES),
    fraction=st.floats(0.0, 1.0),
    relocked=st.booleans(),
)
def test_truncations(point_bundle: Path, name: str, fraction: float, relocked: bool) -> None:
    with bundle_copy(point_bundle) as b:
        path = b / name
        data = path.read_bytes()
        cut = int(len(data) * fraction)
        path.write_bytes(data[:cut])
        if relocked and name not in ("manifest.yaml", "bundle.lock"):
            manifest = read_manifest(b)
            manifest["files"] = {n: sha256_file(b / n) for n in manifest["files"]}
            (b / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
            relock(b, list(manifest["files"]))
        elif relocked and name == "manifest.yaml":
            relock(b, ["adapt_step.onnx", "params.npz", "policy.onnx"])
        seen = outcome(b, "truncation", f"{name}[:{cut}/{len(data)}] relocked={relocked}")
        if data[cut:].strip():  # only a cut of trailing whitespace (a newline) is harmless
            assert seen == "refused"


@FUZZ
@given(
    target=st.sampled_from(["policy.onnx", "adapt_step.onnx", "params.npz"]),
    source=st.sampled_from(["policy.onnx", "adapt_step.onnx", "params.npz", "manifest.yaml"]),
)
def test_swapped_files(point_bundle: Path, target: str, source: str) -> None:
    with bundle_copy(point_bundle) as b:
        shutil.copyfile(point_bundle / source, b / target)
        manifest = read_manifest(b)
        manifest["files"] = {n: sha256_file(b / n) for n in manifest["files"]}
        (b / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        relock(b, list(manifest["files"]))
        seen = outcome(b, "swap", f"{source} -> {target}")
        assert seen == ("harmless" if source == target else "refused")


SNIPPETS = [
    "a: &a [1, 2]\nb: *a\n",
    "x: !!python/object/apply:os.system ['true']\n",
    "x: !!python/name:os.system\n",
    "base: &b {dim: 2}\naction:\n  <<: *b\n",
    "family: point\nfamily: door\n",
    "a: " + "[" * 40 + "]" * 40 + "\n",
    "a: " + "{b: " * 40 + "1" + "}" * 40 + "\n",
    "--- \na: 1\n--- \nb: 2\n",
    "\tfamily: point\n",
    "a: !!binary aGVsbG8=\n",
    "a: !!set {x, y}\n",
    "a: 2001-12-14t21:59:43.10-05:00\n",
    "? [1, 2]\n: complex key\n",
    "a: 'unterminated\n",
    "a: \x00\n",
    "a: \x1b[31m\n",
    "l: [" + ", ".join(["1e309"] * 5) + "]\n",
    "a: " + "x" * 100_000 + "\n",
    "# just a comment\n",
    "%YAML 1.1\n---\na: 1\n",
    "a: *undefined\n",
]


@FUZZ
@given(
    snippet=st.sampled_from(SNIPPETS),
    where=st.sampled_from(["append", "prepend", "replace"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
)
def test_hostile_yaml(point_bundle: Path, snippet: str, where: str, encoding: str) -> None:
    with bundle_copy(point_bundle) as b:
        text = (b / "manifest.yaml").read_text()
        text = {"append": text + snippet, "prepend": snippet + text, "replace": snippet}[where]
        try:
            raw = text.encode(encoding)
        except UnicodeEncodeError:
            return
        (b / "manifest.yaml").write_bytes(raw)
        relock(b, ["adapt_step.onnx", "params.npz", "policy.onnx"])
        outcome(b, "hostile_yaml", f"{where} {snippet[:30]!r} {encoding}")


@FUZZ
@given(raw=st.binary(max_size=512), name=st.sampled_from(["manifest.yaml", "bundle.lock"]))
def test_random_bytes(point_bundle: Path, raw: bytes, name: str) -> None:
    with bundle_copy(point_bundle) as b:
        (b / name).write_bytes(raw)
        if name == "manifest.yaml":
            relock(b, ["adapt_step.onnx", "params.npz", "policy.onnx"])
        assert outcome(b, "random_bytes", f"{name} {len(raw)} bytes") == "refused"


def test_the_smoke_bundle_itself_is_harmless(point_bundle: Path) -> None:
    """The fuzz's reference point: the untouched bundle loads and passes :func:`harmless`."""
    harmless(Bundle.load(point_bundle))


@pytest.mark.parametrize("value", [-0.5, 0.0, 2.0, 10.0])
def test_edited_action_bounds_are_refused(point_bundle: Path, value: float) -> None:
    """Bounds edited by hand, even re-locked: the graphs record the bounds they clip to."""
    with bundle_copy(point_bundle) as b:
        manifest = read_manifest(b)
        manifest["action"]["high"] = [value] * manifest["action"]["dim"]
        (b / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        relock(b, list(manifest["files"]))
        assert outcome(b, "bounds", f"action.high = {value}") == "refused"
