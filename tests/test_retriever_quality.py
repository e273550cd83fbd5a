"""Retrieval quality on hostile and real material: repeated content, headers, long queries.

A real embedded Chroma index with the bundled MiniLM embedder (torch backend).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _corpus import TOPICS, write_corpus

from phi3industry import Retriever, RetrieverConfig
from phi3industry.retrieval.search import collapse_duplicates

#: A sentence of each good document, and the document.
OWN_SENTENCES = {
    "battery.md": "Error code E4711 means the battery pack overheated.",
    "returns.md": "Customers may return unused parts within 30 days of delivery.",
    "safety.md": "Always press the red emergency stop button before opening the chassis.",
    "network.md": "The robot connects to the warehouse Wi-Fi on the 5 GHz band.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


def make_retriever(path: Path, **settings: object) -> Retriever:
    return Retriever(
        RetrieverConfig(path=str(path), embedding_backend="torch", progress=False, **settings)
    )


def test_ten_thousand_identical_chunks_blind_nothing(tmp_path: Path, corpus: Path) -> None:
    # ~10,000 chunks of one repeated line (2 distinct texts), beside the good documents.
    (corpus / "junk.txt").write_text("The same line again.\n" * 410_000, encoding="utf-8")
    retriever = make_retriever(tmp_path / "index")
    report = retriever.sync([corpus])
    junk = (corpus / "junk.txt").resolve().as_posix()
    [(source, n_chunks, distinct)] = report.repeated
    assert source == junk and n_chunks >= 9_000 and distinct <= 3
    assert f"indexed once: {junk}" in report.summary()
    assert retriever.stats()["chunks"] <= 4 * 3 + 3
    for name, sentence in OWN_SENTENCES.items():
        for hybrid in (False, True):
            hits = retriever.search(sentence, k=5, hybrid=hybrid)
            assert hits[0].source.endswith(name), (sentence, hybrid, hits[0])
            assert len({h.text for h in hits}) == len(hits), "two hits with the same text"


def test_identical_texts_across_documents_are_one_hit_listing_every_source(
    tmp_path: Path, corpus: Path
) -> None:
    for i in range(30):
        shutil.copyfile(corpus / "returns.md", corpus / f"returns-copy{i:02d}.md")
    retriever = make_retriever(tmp_path / "index")
    report = retriever.sync([corpus])
    assert report.chunks_embedded == 4, "each distinct text is embedded once"
    # One searched row per distinct text; the 30 copies live beside it.
    assert retriever._collection.count() == 4
    assert retriever._copies.count() == 30
    assert retriever.stats()["documents"] == 34 and retriever.stats()["chunks"] == 34
    copies = sorted((corpus / f"returns-copy{i:02d}.md").resolve().as_posix() for i in range(30))
    returns = (corpus / "returns.md").resolve().as_posix()
    for hybrid in (False, True):
        hits = retriever.search(OWN_SENTENCES["returns.md"], k=4, hybrid=hybrid)
        assert len(hits) == 4 and len({h.text for h in hits}) == 4
        assert sorted(hits[0].sources) == sorted([returns, *copies])
        assert hits[0].sources[0] == hits[0].source
        assert all(h.sources == (h.source,) for h in hits[1:])
    # A filter on a copy's source finds the copy itself.
    [hit] = retriever.search("return parts", k=1, where={"source": copies[7]})
    assert hit.source == copies[7]
    # Every chunk of every copy is still stored, with its own span and document.
    assert len({h.source for h in retriever.iter_chunks()}) == 34


def test_deleting_or_changing_one_holder_of_a_shared_text_keeps_the_others_findable(
    tmp_path: Path, corpus: Path
) -> None:
    for i in range(3):
        shutil.copyfile(corpus / "returns.md", corpus / f"copy{i}.md")
    retriever = make_retriever(tmp_path / "index")
    retriever.sync([corpus])
    names = ["returns.md", "copy0.md", "copy1.md", "copy2.md"]
    holders = {(corpus / n).resolve().as_posix() for n in names}
    searched = retriever._collection.get(where={"source": {"$in": sorted(holders)}})
    [owner] = [m["source"] for m in searched["metadatas"] or []]
    # Delete the document whose row is searched: a copy takes its place.
    Path(owner).unlink()
    report = retriever.sync([corpus])
    assert report.deleted == [owner]
    [hit] = retriever.search(OWN_SENTENCES["returns.md"], k=1)
    assert sorted(hit.sources) == sorted(holders - {owner})
    # Change the next owner; the remaining one is still found, and so is the new text.
    [next_owner] = [
        m["source"]
        for m in retriever._collection.get(where={"source": {"$in": sorted(holders)}})["metadatas"]
        or []
    ]
    Path(next_owner).write_text("# Moved\n\nThis page moved to the wiki.\n", encoding="utf-8")
    retriever.sync([corpus])
    [hit] = retriever.search(OWN_SENTENCES["returns.md"], k=1)
    assert sorted(hit.sources) == sorted(holders - {owner, next_owner})
    assert retriever.search("page moved to the wiki", k=1)[0].source == next_owner
    # Retriever.delete of the last owner hands the text to the last copy.
    remaining = sorted(holders - {owner, next_owner})
    retriever.delete(retriever.search(OWN_SENTENCES["returns.md"], k=1)[0].source)
    [hit] = retriever.search(OWN_SENTENCES["returns.md"], k=1)
    assert len(hit.sources) == 1 and hit.source in remaining
    assert retriever._copies.count() == 0


def test_a_killed_promotion_is_repaired_by_the_next_sync(tmp_path: Path, corpus: Path) -> None:
    shutil.copyfile(corpus / "returns.md", corpus / "copy.md")
    retriever = make_retriever(tmp_path / "index")
    retriever.sync([corpus])
    # What a kill leaves between the steps of a promotion: the searched row deleted with no
    # copy promoted yet, or a copy promoted but still in the copies collection as well.
    searched = retriever._collection.get(where={"chunk_hash": {"$ne": ""}}, include=[])["ids"]
    copy = retriever._copies.get(include=["documents", "metadatas", "embeddings"])
    [copy_id] = copy["ids"]
    owner_id = next(i for i in searched if i.split("-")[2] == copy_id.split("-")[2])
    retriever._collection.delete(ids=[owner_id])
    assert not any(h.text.startswith("# Returns") for h in retriever.search("return", k=4))
    retriever.sync([corpus])
    hit = retriever.search(OWN_SENTENCES["returns.md"], k=1)[0]
    assert "30 days" in hit.text and len(hit.sources) == 2
    assert (retriever._collection.count(), retriever._copies.count()) == (4, 1)
    retriever._copies.upsert(
        ids=[hit.id],
        documents=[hit.text],
        metadatas=[retriever._collection.get(ids=[hit.id])["metadatas"][0]],  # type: ignore[index]
        embeddings=retriever._collection.get(ids=[hit.id], include=["embeddings"])["embeddings"],
    )
    retriever.sync([corpus])
    in_both = set(retriever._collection.get(include=[])["ids"]) & set(
        retriever._copies.get(include=[])["ids"]
    )
    assert not in_both
    assert len(retriever.search(OWN_SENTENCES["returns.md"], k=1)[0].sources) == 2


def test_near_identical_passages_collapse_into_one_hit(tmp_path: Path) -> None:
    base = TOPICS["returns.md"]
    docs = write_corpus(
        tmp_path / "docs",
        {
            "returns.md": base,
            "returns-shouting.md": base.upper().replace(".", " !"),
            "returns-spaced.md": base.replace(" ", "  ").replace("5", "5 "),
            "network.md": TOPICS["network.md"],
        },
    )
    retriever = make_retriever(tmp_path / "index")
    retriever.sync([docs])
    hits = retriever.search(OWN_SENTENCES["returns.md"], k=3)
    assert len(hits) == 2
    assert len(hits[0].sources) == 3 and hits[1].source.endswith("network.md")


def test_collapse_duplicates_keeps_the_best_ranked_of_each_group() -> None:
    texts = {
        "a": "Refunds are issued within five business days to the original card.",
        "b": "refunds are issued within five business days to the original card",
        "c": "Refunds are issued within five business days to the original card !!",
        "d": "Wear gloves when handling the gripper.",
        "e": "Refunds are issued within five days.",
    }
    kept, absorbed = collapse_duplicates(["d", "a", "b", "e", "c"], texts)
    assert kept == ["d", "a", "e"]
    assert absorbed == {"d": [], "a": ["b", "c"], "e": []}
    assert collapse_duplicates([], {}) == ([], {})


# --------------------------------------------------------------------------- chunk headers


def gripper_corpus(root: Path) -> Path:
    filler = "\n\n".join(
        f"Step {i}: check the torque of bolt {i} and write the value in the service log."
        for i in range(40)
    )
    return write_corpus(
        root,
        {
            "ar7.md": f"# AR7 gripper\n\n## Cleaning\n\n{filler}\n\n"
            "Wipe the pads with isopropyl alcohol once a week.\n",
            "ar9.md": "# AR9 lidar\n\n## Cleaning\n\nWipe the lens with a dry cloth daily.\n",
        },
    )


@pytest.mark.parametrize("contextual", [True, False])
def test_contextual_headers_are_matched_but_stored_text_stays_exact(
    tmp_path: Path, contextual: bool
) -> None:
    docs = gripper_corpus(tmp_path / "docs")
    retriever = make_retriever(tmp_path / "index", contextual_headers=contextual)
    retriever.sync([docs])
    [last] = [h for h in retriever.iter_chunks() if "isopropyl" in h.text]
    assert "gripper" not in last.text.lower(), "the test needs a chunk without the heading"
    text = (docs / "ar7.md").read_text(encoding="utf-8")
    assert text[last.span[0] : last.span[1]] == last.text
    assert last.section == "AR7 gripper > Cleaning"
    # BM25 finds the chunk by its document's heading only when headers are on.
    bm25 = retriever._bm25.get(retriever._collection)
    found = {cid for cid, _ in bm25.search("AR7 gripper", k=50)}
    assert (last.id in found) is contextual
    # The stored vector is that of the header and text, or of the text alone.
    [stored] = retriever._collection.get(ids=[last.id], include=["embeddings"])["embeddings"]
    plain = retriever.embedder.embed_documents([last.text])[0]
    assert (float(stored @ plain) < 0.999) is contextual
    hit = retriever.search("How often do I clean the AR7 gripper pads?", k=1, hybrid=True)[0]
    assert hit.text == text[hit.span[0] : hit.span[1]]


def test_switching_contextual_headers_re_embeds_every_document(tmp_path: Path) -> None:
    docs = gripper_corpus(tmp_path / "docs")
    retriever = make_retriever(tmp_path / "index", contextual_headers=True)
    first = retriever.sync([docs])
    again = Retriever.open(tmp_path / "index", contextual_headers=False).sync([docs])
    assert len(again.updated) == 2 and again.chunks_embedded == first.chunks_embedded
    assert Retriever.open(tmp_path / "index").config.contextual_headers is False
    bm25 = Retriever.open(tmp_path / "index")._bm25
    assert bm25.variant == ""


def test_chunk_header_and_contextual_text_never_cut_the_chunk() -> None:
    from phi3industry.retrieval.documents import chunk_header, contextual_text

    assert chunk_header(None, None) == ""
    assert chunk_header("Manual", None) == "Manual"
    assert chunk_header(None, "A > B") == "A > B"
    assert chunk_header("Manual", "Manual > Setup") == "Manual > Setup"
    words = lambda s: len(s.split())  # noqa: E731
    text = "one two three four five six seven"
    fitted = contextual_text(text, "Guide > Part > Chapter > Section", words, 10)
    assert fitted.endswith("\n\n" + text) and words(fitted) <= 10
    assert fitted.startswith("Chapter > Section\n")
    assert contextual_text(text, "Guide > Part", words, 7) == text
    assert contextual_text(text, "", words, 100) == text
    assert contextual_text(text, "Guide", None, None) == "Guide\n\n" + text
    # A chunk's known token count gives the same text as counting it again.
    header = "Guide > Part > Chapter > Section"
    assert contextual_text(text, header, words, 10, text_tokens=words(text)) == fitted


# --------------------------------------------------------------------------- long queries

CHATTER = (
    "Good morning, I hope your week is going well and that the weather is nicer where you "
    "are than here, since it has been raining for days and my garden is a swamp. "
)


WIFI_TROUBLE = (
    "Our robots keep dropping off the warehouse wireless network and I do not know which "
    "frequency band or SSID settings they expect. "
)


def long_query(retriever: Retriever, tail: str, windows: int) -> str:
    """Chatter filling ``windows - 1`` embedder windows, then ``tail``."""
    limit = retriever.embedder.max_tokens
    assert limit is not None
    per = retriever.embedder.count_tokens(CHATTER)
    return CHATTER * ((windows - 1) * limit // per + 1) + tail


def test_a_long_query_is_embedded_in_windows_and_its_end_counts(
    tmp_path: Path, corpus: Path
) -> None:
    from phi3industry.errors import QueryTruncatedWarning

    retriever = make_retriever(tmp_path / "index")
    retriever.sync([corpus])
    # A window of chatter, then two about the problem: cut to its start, it is only chatter.
    query = long_query(retriever, WIFI_TROUBLE * 14, 2)
    assert retriever.embedder.count_tokens(query) > 2 * (retriever.embedder.max_tokens or 0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing was cut
        hits = retriever.search(query, k=2)
    assert hits[0].source.endswith("network.md")
    assert hits[0].metadata["query_windows"] == 3 and "query_cut" not in hits[0].metadata
    # Cut to what the embedder reads, the same query finds something else first.
    truncating = Retriever.open(tmp_path / "index", long_query="truncate")
    with pytest.warns(QueryTruncatedWarning, match="long_query='truncate'"):
        cut = truncating.search(query, k=1)
    assert not cut[0].source.endswith("network.md")
    # Short queries carry nothing extra.
    assert "query_windows" not in retriever.search("Wi-Fi band", k=1)[0].metadata


def test_a_cut_query_is_reported(tmp_path: Path, corpus: Path) -> None:
    from phi3industry.errors import QueryTruncatedWarning

    retriever = make_retriever(tmp_path / "index", max_query_windows=2)
    retriever.sync([corpus])
    query = long_query(retriever, "Anyway: on which Wi-Fi band does the robot connect?", 3)
    with pytest.warns(QueryTruncatedWarning, match="max_query_windows=2"):
        hits = retriever.search(query, k=1)
    assert hits[0].metadata["query_cut"] is True and hits[0].metadata["query_windows"] == 2
    truncating = Retriever.open(tmp_path / "index", long_query="truncate")
    with pytest.warns(QueryTruncatedWarning, match="long_query='truncate'"):
        hits = truncating.search(query, k=1, hybrid=True)
    assert hits[0].metadata["query_cut"] is True


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"long_query": "mean"}, "long_query must be 'pool' or 'truncate', got 'mean'"),
        ({"max_query_windows": 0}, "max_query_windows must be a positive integer, got 0"),
        ({"bm25_weight": 0}, r"bm25_weight must be a number in \(0, 10\] or unset"),
        ({"bm25_weight": "high"}, "bm25_weight must be a number .* got 'high'"),
        ({"bm25_weight": True}, "bm25_weight must be a number .* got True"),
        ({"max_per_source": 0}, "max_per_source must be a positive integer or None"),
    ],
)
def test_bad_long_query_settings(settings: dict[str, object], match: str) -> None:
    from phi3industry.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        RetrieverConfig(path="x", **settings)  # type: ignore[arg-type]


def test_split_windows_packs_sentences_and_splits_long_ones() -> None:
    from phi3industry.retrieval.embeddings import split_windows

    words = lambda s: len(s.split())  # noqa: E731
    assert split_windows("a b. c d. e f g h i j. k", words, 4) == [
        "a b. c d.",
        "e f g h",
        "i j. k",
    ]
    assert split_windows("  \n ", words, 4) == []


def test_bm25_weight_falls_with_query_length_and_a_fixed_one_is_kept() -> None:
    from phi3industry.retrieval.search import KEYWORD_MIN_WEIGHT, keyword_weight

    assert keyword_weight("What does error E4711 mean?") == 1.0
    assert keyword_weight(" ".join(["word"] * 25)) == 1.0
    assert keyword_weight(" ".join(["word"] * 50)) == pytest.approx(0.5)
    assert keyword_weight(" ".join(["word"] * 500)) == KEYWORD_MIN_WEIGHT
    assert keyword_weight(" ".join(["word"] * 500), 2.0) == 2.0


def test_weighted_rrf_lets_the_heavier_ranking_decide() -> None:
    from phi3industry.retrieval.search import rrf_fuse

    dense, keyword = ["a", "b", "c"], ["b", "a", "d"]
    assert rrf_fuse([dense, keyword], 60)[0][:2] in (["a", "b"], ["b", "a"])
    assert rrf_fuse([dense, keyword], 60, [1.0, 0.5])[0] == ["a", "b", "c", "d"]
    order, scores = rrf_fuse([dense, keyword], 60, [0.5, 1.0])
    assert order == ["b", "a", "d", "c"]
    assert scores["d"] == pytest.approx(1.0 / 63)
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        rrf_fuse([dense, keyword], 60, [1.0])


def test_defaults_are_hybrid_with_headers_and_bm25_weight_steers_the_fusion(
    tmp_path: Path, corpus: Path
) -> None:
    config = RetrieverConfig(path="x")
    assert config.hybrid is True and config.contextual_headers is True
    assert config.bm25_weight is None
    retriever = make_retriever(tmp_path / "index")
    retriever.sync([corpus])
    query = "robot battery returns"
    fused = retriever.search(query, k=5)
    assert fused and all("dense_score" in hit.metadata for hit in fused)  # hybrid by default
    dense = retriever.search(query, k=5, hybrid=False)
    assert dense and all("dense_score" not in hit.metadata for hit in dense)
    # BM25 at a hundredth of dense's weight: the fused order is dense's own.
    faint = Retriever.open(tmp_path / "index", bm25_weight=0.01)
    assert [h.id for h in faint.search(query, k=5)] == [h.id for h in dense]
    # A reader's overrides are its own: the index keeps the settings its writer stored.
    assert Retriever.open(tmp_path / "index").config.bm25_weight is None
    faint.sync([corpus])  # a writer's settings are stored
    assert Retriever.open(tmp_path / "index").config.bm25_weight == 0.01
    # A code is a short query: BM25 keeps its full weight and finds the chunk holding it.
    code = retriever.search("E4711", k=3)
    assert "E4711" in code[0].text


def test_max_per_source_spreads_the_hits_over_documents(tmp_path: Path, corpus: Path) -> None:
    sections = "\n\n".join(
        f"## Battery check {i}\n\nStep {i}: measure the battery pack voltage and temperature "
        f"before charging; log reading {i} in the battery book."
        for i in range(12)
    )
    (corpus / "battery-log.md").write_text(f"# Battery log\n\n{sections}\n", encoding="utf-8")
    retriever = make_retriever(tmp_path / "index", chunk_size=40, chunk_overlap=0)
    assert retriever.config.max_per_source == 2  # the default
    retriever.sync([corpus])
    query = "battery pack voltage and temperature"
    unlimited = Retriever.open(tmp_path / "index", max_per_source=None).search(query, k=6)
    sources = [Path(hit.source).name for hit in unlimited]
    assert sources.count("battery-log.md") >= 3  # one document fills the hits...
    spread = retriever.search(query, k=6)
    counts = [Path(hit.source).name for hit in spread]
    assert counts.count("battery-log.md") == 2  # ...unless spread over the documents
    assert max(counts.count(name) for name in counts) <= 2
    assert len(spread) == 6  # five documents, two hits each at most: k is still filled
    assert {"battery.md"} <= set(counts)
    # Its best two hits are the unlimited search's best two from that document.
    ids = [hit.id for hit in unlimited if Path(hit.source).name == "battery-log.md"][:2]
    assert [hit.id for hit in spread if Path(hit.source).name == "battery-log.md"] == ids


def test_max_per_source_still_fills_k_from_a_single_document(tmp_path: Path) -> None:
    docs = tmp_path / "manual"
    docs.mkdir()
    sections = "\n\n".join(
        f"## Pump step {i}\n\nStep {i}: bleed the hydraulic pump at valve V{i} before starting."
        for i in range(10)
    )
    (docs / "pump-manual.md").write_text(f"# Pump manual\n\n{sections}\n", encoding="utf-8")
    retriever = make_retriever(tmp_path / "index", chunk_size=40, chunk_overlap=0)
    retriever.sync([docs])
    hits = retriever.search("bleed the hydraulic pump", k=5)
    assert len(hits) == 5  # one manual: its further hits fill the k
    assert {Path(hit.source).name for hit in hits} == {"pump-manual.md"}
