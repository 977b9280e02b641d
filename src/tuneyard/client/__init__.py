"""tuneyard's typed Python client for its HTTP (Emissary-compatible) API.

    from tuneyard.client import TuneyardClient
    client = TuneyardClient.from_config()          # what `tuneyard login` saved
    for ckpt in client.jobs.checkpoints("ms-…", "tr-…"):
        print(ckpt.checkpoint, ckpt.metrics)

Modules: `core` (the client), one per resource group (`projects`, `jobs`,
`deployments`), `transfer` (streamed upload, resumable download), `sse`
(streamed chat), `types` (response models), `config` (login file), `errors`.
"""

from .config import Credentials, load_credentials
from .core import TuneyardClient
from .errors import (
    ChecksumMismatch,
    TuneyardAPIError,
    TuneyardClientError,
    TuneyardConnectionError,
)
from .transfer import DownloadResult
from .types import (
    BaseModelInfo,
    ChatCompletion,
    Checkpoint,
    Classification,
    Completion,
    Dataset,
    Deployment,
    Embeddings,
    Project,
    TestFunction,
    TestResults,
    TrainingJob,
)

__all__ = [
    "BaseModelInfo", "ChatCompletion", "Checkpoint", "ChecksumMismatch", "Classification",
    "Completion", "Credentials", "Dataset", "Deployment", "DownloadResult", "Embeddings",
    "Project", "TestFunction", "TestResults", "TrainingJob", "TuneyardAPIError",
    "TuneyardClient", "TuneyardClientError", "TuneyardConnectionError", "load_credentials",
]
