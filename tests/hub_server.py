"""A local Hub-protocol server for tests: the real huggingface_hub / datasets / transformers clients talk to it.

Repos live in a folder: ``<root>/<type>s/<namespace>/<name>/`` holds ``refs.json`` (branch -> commit id) and
``commits/<id>.json`` (parent, title, date and the full file table); file contents are stored once by sha256 in
``<root>/objects/``. Routes: repo create, whoami, repo info / revision, tree, paths-info, validate-yaml,
preupload + NDJSON commit, LFS batch + upload, resolve (HEAD and GET with X-Repo-Commit and ETag). Errors carry
``X-Error-Code`` (RepoNotFound / RevisionNotFound / EntryNotFound) like the Hub. Xet is not served: clients need
``HF_HUB_DISABLE_XET=1``.
"""

import base64
import hashlib
import json
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (
    ".parquet",
    ".arrow",
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".onnx",
    ".msgpack",
    ".npy",
    ".npz",
    ".pkl",
    ".zip",
    ".gz",
    ".tar",
    ".zst",
    ".model",
    ".png",
    ".jpg",
    ".jpeg",
    ".wav",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
# Creating a repo whose name starts with this fails with an error that echoes the Authorization header, so tests
# can check that hfdc scrubs the token from errors.
ECHO_AUTH_PREFIX = "echo-auth"
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_oid(content: bytes) -> str:
    """Git object id of a blob: sha1(b"blob <size>\\0" + content)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file that stands in the git tree for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, code: str | None, message: str) -> JSONResponse:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class HubError(Exception):
    """An HTTP error answered the way the Hub answers it."""

    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class HubStore:
    """Repos with commit history and a content-addressed object store, all under one folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    # --- objects ---
    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def put_object(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.object_path(sha256)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(content)
            tmp.replace(path)
        return sha256

    # --- repos ---
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{repo_type}s" / repo_id

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.repo_dir(repo_type, repo_id) / "refs.json").exists()

    def create(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if self.exists(repo_type, repo_id):
                raise HubError(409, None, f"You already created this {repo_type} repo: {repo_id}")
            (self.repo_dir(repo_type, repo_id) / "commits").mkdir(parents=True)
            self._write_refs(repo_type, repo_id, {})
            self.commit(
                repo_type, repo_id, "main", "initial commit", [("file", ".gitattributes", GITATTRIBUTES, False)]
            )

    def _refs(self, repo_type: str, repo_id: str) -> dict:
        return json.loads((self.repo_dir(repo_type, repo_id) / "refs.json").read_text())

    def _write_refs(self, repo_type: str, repo_id: str, refs: dict) -> None:
        (self.repo_dir(repo_type, repo_id) / "refs.json").write_text(json.dumps(refs))

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> dict:
        """The commit a branch name or commit id points to."""
        if not self.exists(repo_type, repo_id):
            raise HubError(404, "RepoNotFound", f"Repository Not Found: {repo_type} {repo_id}")
        commit_id = self._refs(repo_type, repo_id).get(revision, revision)
        path = self.repo_dir(repo_type, repo_id) / "commits" / f"{commit_id}.json"
        if len(commit_id) != 40 or not path.exists():
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return json.loads(path.read_text())

    def commit(self, repo_type: str, repo_id: str, branch: str, title: str, operations, parent_commit=None) -> str:
        """Apply operations (kind, path, bytes-or-sha256, is_lfs) on top of the branch head; return the commit id."""
        with self.lock:
            refs = self._refs(repo_type, repo_id)
            head = refs.get(branch)
            if parent_commit is not None and parent_commit != head:
                raise HubError(412, None, f"Parent commit {parent_commit} is not the head of {branch} ({head})")
            files = dict(self.resolve(repo_type, repo_id, head)["files"]) if head else {}
            for kind, path, payload, is_lfs in operations:
                if kind == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, "EntryNotFound", f"File to delete not found: {path}")
                elif kind == "deletedFolder":
                    files = {p: f for p, f in files.items() if not p.startswith(path.rstrip("/") + "/")}
                elif is_lfs:
                    if not self.object_path(payload).exists():
                        raise HubError(422, None, f"LFS object {payload} for {path} was not uploaded")
                    size = self.object_path(payload).stat().st_size
                    files[path] = {
                        "sha256": payload,
                        "size": size,
                        "lfs": True,
                        "oid": git_blob_oid(lfs_pointer(payload, size)),
                    }
                else:
                    files[path] = {
                        "sha256": self.put_object(payload),
                        "size": len(payload),
                        "lfs": False,
                        "oid": git_blob_oid(payload),
                    }
            record = {"parent": head, "title": title, "date": _now(), "files": files}
            commit_id = hashlib.sha1(json.dumps([record, time.time_ns()], sort_keys=True).encode()).hexdigest()
            record["id"] = commit_id
            (self.repo_dir(repo_type, repo_id) / "commits" / f"{commit_id}.json").write_text(json.dumps(record))
            refs[branch] = commit_id
            self._write_refs(repo_type, repo_id, refs)
            return commit_id


def _entry(path: str, meta: dict | None, commit: dict, expand: bool) -> dict:
    """A tree / paths-info entry for a file (meta given) or a folder."""
    if meta is None:
        entry = {
            "type": "directory",
            "path": path,
            "oid": hashlib.sha1(f"{commit['id']}:{path}".encode()).hexdigest(),
            "size": 0,
        }
    else:
        entry = {"type": "file", "path": path, "oid": meta["oid"], "size": meta["size"]}
        if meta["lfs"]:
            entry["lfs"] = {
                "oid": meta["sha256"],
                "size": meta["size"],
                "pointerSize": len(lfs_pointer(meta["sha256"], meta["size"])),
            }
    if expand:
        entry["lastCommit"] = {"id": commit["id"], "title": commit["title"], "date": commit["date"]}
    return entry


def _folders(files: dict) -> set[str]:
    return {str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parents) - 1)}


def _card_data(store: HubStore, files: dict) -> dict | None:
    meta = files.get("README.md")
    if meta is None:
        return None
    text = store.object_path(meta["sha256"]).read_text()
    if not text.startswith("---"):
        return None
    return yaml.safe_load(text.split("---", 2)[1]) or None


def create_app(store: HubStore) -> FastAPI:
    """The FastAPI app answering the Hub routes the clients use."""
    app = FastAPI()

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError):
        return _error(exc.status, exc.code, exc.message)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def repo_type_of(plural: str) -> str:
        if plural not in REPO_TYPES:
            raise HubError(404, None, f"Unknown repo type {plural}")
        return REPO_TYPES[plural]

    @app.get("/api/whoami-v2")
    async def whoami():
        return {
            "type": "user",
            "name": "hfdc-tester",
            "fullname": "hfdc tester",
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        }

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        body = await request.json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if "/" not in repo_id:
            repo_id = f"hfdc-tester/{repo_id}"
        if body["name"].startswith(ECHO_AUTH_PREFIX):
            raise HubError(403, None, f"Forbidden, request had {request.headers.get('authorization')}")
        store.create(repo_type, repo_id)
        return {"url": f"{base(request)}/{URL_PREFIXES[repo_type]}{repo_id}", "name": repo_id, "id": repo_id}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request):
        content = (await request.json()).get("content", "")
        if content.startswith("---"):
            try:
                metadata = yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as exc:
                return JSONResponse({"errors": [{"message": f"Invalid YAML: {exc}"}]}, status_code=400)
            if metadata is not None and not isinstance(metadata, dict):
                return JSONResponse({"errors": [{"message": "YAML metadata must be a mapping"}]}, status_code=400)
        return {"errors": [], "warnings": []}

    def info(request: Request, plural: str, ns: str, name: str, revision: str) -> dict:
        repo_type, repo_id = repo_type_of(plural), f"{ns}/{name}"
        commit = store.resolve(repo_type, repo_id, revision)
        files = commit["files"]
        siblings = [{"rfilename": p} for p in sorted(files)]
        if request.query_params.get("blobs"):
            siblings = [
                {
                    "rfilename": p,
                    "size": f["size"],
                    "blobId": f["oid"],
                    **(
                        {
                            "lfs": {
                                "sha256": f["sha256"],
                                "size": f["size"],
                                "pointerSize": len(lfs_pointer(f["sha256"], f["size"])),
                            }
                        }
                        if f["lfs"]
                        else {}
                    ),
                }
                for p, f in sorted(files.items())
            ]
        card = _card_data(store, files)
        return {
            "id": repo_id,
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "author": ns,
            "sha": commit["id"],
            "lastModified": commit["date"],
            "createdAt": commit["date"],
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": (card or {}).get("tags", []),
            "cardData": card,
            "siblings": siblings,
        }

    @app.get("/api/{plural}/{ns}/{name}")
    async def repo_info(request: Request, plural: str, ns: str, name: str):
        return info(request, plural, ns, name, "main")

    @app.get("/api/{plural}/{ns}/{name}/revision/{revision}")
    async def repo_info_revision(request: Request, plural: str, ns: str, name: str, revision: str):
        return info(request, plural, ns, name, revision)

    @app.get("/api/{plural}/{ns}/{name}/tree/{revision}")
    @app.get("/api/{plural}/{ns}/{name}/tree/{revision}/{path:path}")
    async def tree(request: Request, plural: str, ns: str, name: str, revision: str, path: str = ""):
        commit = store.resolve(repo_type_of(plural), f"{ns}/{name}", revision)
        files, path = commit["files"], path.strip("/")
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        expand = request.query_params.get("expand", "").lower() in ("1", "true")
        folders = _folders(files)
        if path and path not in folders:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
        prefix = f"{path}/" if path else ""
        entries = []
        for folder in sorted(folders):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix) :]):
                entries.append(_entry(folder, None, commit, expand))
        for file_path, meta in sorted(files.items()):
            if file_path.startswith(prefix) and (recursive or "/" not in file_path[len(prefix) :]):
                entries.append(_entry(file_path, meta, commit, expand))
        return entries

    @app.post("/api/{plural}/{ns}/{name}/paths-info/{revision}")
    async def paths_info(request: Request, plural: str, ns: str, name: str, revision: str):
        commit = store.resolve(repo_type_of(plural), f"{ns}/{name}", revision)
        form = await request.form()
        expand = str(form.get("expand", "")).lower() in ("1", "true")
        folders = _folders(commit["files"])
        entries = []
        for path in form.getlist("paths"):
            path = str(path).strip("/")
            if path in commit["files"]:
                entries.append(_entry(path, commit["files"][path], commit, expand))
            elif path in folders:
                entries.append(_entry(path, None, commit, expand))
        return entries

    @app.post("/api/{plural}/{ns}/{name}/preupload/{revision}")
    async def preupload(request: Request, plural: str, ns: str, name: str, revision: str):
        commit = store.resolve(repo_type_of(plural), f"{ns}/{name}", revision)
        answers = []
        for item in (await request.json())["files"]:
            lfs = item["path"].lower().endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE
            remote = commit["files"].get(item["path"])
            oid = None if remote is None else (remote["sha256"] if remote["lfs"] else remote["oid"])
            answers.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        return {"files": answers, "commitOid": commit["id"]}

    @app.post("/api/{plural}/{ns}/{name}/commit/{revision}")
    async def commit(request: Request, plural: str, ns: str, name: str, revision: str):
        repo_type, repo_id = repo_type_of(plural), f"{ns}/{name}"
        store.resolve(repo_type, repo_id, revision)
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        operations = []
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                operations.append(("file", value["path"], base64.b64decode(value["content"]), False))
            elif key == "lfsFile":
                operations.append(("file", value["path"], value["oid"], True))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append((key, value["path"], None, False))
        commit_id = store.commit(
            repo_type, repo_id, revision, header["summary"], operations, parent_commit=header.get("parentCommit")
        )
        return {
            "success": True,
            "commitOid": commit_id,
            "pullRequestUrl": None,
            "commitUrl": f"{base(request)}/{URL_PREFIXES[repo_type]}{repo_id}/commit/{commit_id}",
        }

    async def lfs_batch(request: Request, repo_type: str, repo_id: str):
        if not store.exists(repo_type, repo_id):
            raise HubError(404, "RepoNotFound", f"Repository Not Found: {repo_type} {repo_id}")
        objects = []
        for obj in (await request.json())["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not store.object_path(obj["oid"]).exists():
                answer["actions"] = {
                    "upload": {"href": f"{base(request)}/lfs-upload/{obj['oid']}", "expires_in": 3600}
                }
            objects.append(answer)
        return JSONResponse({"transfer": "basic", "objects": objects}, media_type="application/vnd.git-lfs+json")

    @app.post("/datasets/{ns}/{name}.git/info/lfs/objects/batch")
    async def lfs_batch_dataset(request: Request, ns: str, name: str):
        return await lfs_batch(request, "dataset", f"{ns}/{name}")

    @app.post("/spaces/{ns}/{name}.git/info/lfs/objects/batch")
    async def lfs_batch_space(request: Request, ns: str, name: str):
        return await lfs_batch(request, "space", f"{ns}/{name}")

    @app.post("/{ns}/{name}.git/info/lfs/objects/batch")
    async def lfs_batch_model(request: Request, ns: str, name: str):
        return await lfs_batch(request, "model", f"{ns}/{name}")

    @app.put("/lfs-upload/{oid}")
    async def lfs_upload(request: Request, oid: str):
        content = await request.body()
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, None, f"Uploaded content does not match sha256 {oid}")
        store.put_object(content)
        return Response(status_code=200)

    def resolve_file(request: Request, repo_type: str, repo_id: str, revision: str, path: str):
        commit = store.resolve(repo_type, repo_id, revision)
        meta = commit["files"].get(path)
        if meta is None:
            raise HubError(404, "EntryNotFound", f"Entry not found: {path} in {repo_id}@{revision}")
        headers = {"X-Repo-Commit": commit["id"], "ETag": f'"{meta["oid"]}"'}
        if meta["lfs"]:
            headers.update({"X-Linked-Etag": f'"{meta["sha256"]}"', "X-Linked-Size": str(meta["size"])})
        if request.method == "HEAD":
            return Response(status_code=200, headers={**headers, "Content-Length": str(meta["size"])})
        return FileResponse(
            store.object_path(meta["sha256"]),
            headers=headers,
            media_type="application/octet-stream",
            content_disposition_type="inline",
            filename=Path(path).name,
        )

    @app.api_route("/datasets/{ns}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve_dataset(request: Request, ns: str, name: str, revision: str, path: str):
        return resolve_file(request, "dataset", f"{ns}/{name}", revision, path)

    @app.api_route("/spaces/{ns}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve_space(request: Request, ns: str, name: str, revision: str, path: str):
        return resolve_file(request, "space", f"{ns}/{name}", revision, path)

    @app.api_route("/{ns}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve_model(request: Request, ns: str, name: str, revision: str, path: str):
        return resolve_file(request, "model", f"{ns}/{name}", revision, path)

    @app.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "DELETE"])
    async def not_served(request: Request, path: str):
        return _error(404, None, f"Route not served by the test Hub: {request.method} /{path}")

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubServer:
    """Runs the app with uvicorn in a daemon thread on 127.0.0.1; ``endpoint`` is the URL for HF_ENDPOINT."""

    def __init__(self, root: Path):
        self.store = HubStore(root)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.store), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"test Hub server did not start on {self.endpoint}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
