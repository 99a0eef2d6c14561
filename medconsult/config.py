"""The one typed settings object.

Every value comes from, in order of precedence: arguments to `Settings(...)`, environment variables prefixed
`MEDCONSULT_`, a YAML file (`MEDCONSULT_CONFIG`, else `./medconsult.yaml` when present), then the defaults below.
Moving from the laptop set-up to a hospital deployment is a matter of these values, never of code:
`MEDCONSULT_LLM_BASE_URL` points at vLLM, `MEDCONSULT_FHIR_BASE_URL` at the hospital's FHIR server.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

StructuredOutputMethod = Literal["function_calling", "json_schema", "json_mode"]
FhirAuthMode = Literal["none", "bearer", "smart-backend"]
FhirJwtAlgorithm = Literal["RS384", "ES384"]  # the two every SMART server must accept

REPO_ROOT = Path(__file__).resolve().parent.parent


def _config_file() -> Path | None:
    explicit = os.environ.get("MEDCONSULT_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("medconsult.yaml")
    return local if local.exists() else None


UNSET_API_KEY = "not-needed"  # what clients send to a server that asks for no key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDCONSULT_", extra="ignore", validate_default=True)

    # --- LLM: any OpenAI-compatible server; none configured -> embedded llama.cpp server -------------------
    llm_base_url: str | None = Field(None, description="OpenAI-compatible /v1 URL (vLLM in production)")
    llm_model: str | None = Field(None, description="model name sent to the server")
    llm_api_key: SecretStr = SecretStr(UNSET_API_KEY)
    llm_profile: str | None = Field(
        None, description="serving profile (llm/profiles.yaml) for client options"
    )
    llm_structured_output: StructuredOutputMethod | None = Field(
        None,
        description="how schema-constrained output is requested; default: the profile's, else json_schema",
    )
    llm_temperature: float = 0.0
    llm_seed: int | None = 7
    llm_max_tokens: int = 1400  # above the longest reply the request schemas' limits allow, so none is cut
    llm_stream: bool = Field(True, description="stream replies (the CLI shows the differential and plan as they grow)")
    llm_timeout_s: float = 600.0
    llm_retries: int = 1
    plan_revisions: int = Field(1, ge=0, le=3, description="redrafts of a plan whose regimen the safety review blocked")
    react_max_steps: int = Field(6, ge=1, le=20, description="tool calls the ReAct baseline may make before answering")
    evidence_rounds: int = Field(
        1, ge=0, le=3, description="rounds in which the model may ask for more of the record before the differential"
    )

    embedded_model: str = Field("qwen2.5-1.5b", description="qwen2.5-1.5b or smollm2-135m")
    embedded_threads: int = 2
    embedded_context: int = 8192
    # With llama.cpp's default ("auto") two cores decoded the demo's differential at 6.9 tok/s, with flash attention
    # off at 8.3 (the same captured request replayed on a fresh server; llama-server's timings).
    embedded_flash_attention: Literal["on", "off", "auto"] = "off"
    embedded_port: int = 0  # 0: pick a free port
    model_dir: Path = Field(default_factory=lambda: _cache_home() / "medconsult" / "models")

    # --- FHIR: none configured -> the project's local server -----------------------------------------------
    fhir_base_url: str | None = Field(None, description="FHIR R4 base URL of an external server")
    fhir_bearer_token: SecretStr | None = None
    fhir_auth: FhirAuthMode | None = Field(
        None, description="none, bearer or smart-backend; unset: bearer when a bearer token is set, else none"
    )
    # SMART Backend Services (client-confidential-asymmetric): a signed JWT buys a short-lived access token.
    fhir_client_id: str | None = Field(None, description="client_id registered with the hospital's server")
    fhir_private_key: SecretStr | None = Field(None, description="PEM private key (or fhir_private_key_file)")
    fhir_private_key_file: Path | None = None
    fhir_key_id: str | None = Field(None, description="kid of the registered public key (JWKS)")
    fhir_jwt_alg: FhirJwtAlgorithm = "RS384"
    fhir_token_url: str | None = Field(
        None, description="token endpoint; default: discovered from .well-known/smart-configuration"
    )
    fhir_scope: str = Field("system/*.rs", description="SMART v2 scopes; v1 servers want system/*.read")
    fhir_host: str = "127.0.0.1"
    fhir_port: int = 8090
    fhir_timeout_s: float = 15.0
    fhir_write_back: bool = Field(
        False, description="after sign-off, write a preliminary DiagnosticReport and a draft CarePlan to the server"
    )

    # --- paths ---------------------------------------------------------------------------------------------
    state_dir: Path = Path(".medconsult")
    data_dir: Path | None = Field(
        None, description="public data sets (default: ../shared/data of the checkout)"
    )
    checkpoint_db: Path | None = None
    checkpoint_busy_timeout_s: float = Field(
        30.0, gt=0, description="how long a checkpoint write waits for a database another process holds locked"
    )

    # --- imaging -------------------------------------------------------------------------------------------
    seg_bundle: str | None = Field(
        None,
        description="lung-segmentation bundle folder (MONAI bundle layout); default: the bundled lung_unet",
    )

    # --- fusion: shared latent space and reference library ---------------------------------------------------
    chroma_url: str | None = Field(
        None, description="Chroma server (http://host:port); default: an embedded PersistentClient in index_dir"
    )
    index_dir: Path = Field(
        default_factory=lambda: _cache_home() / "medconsult" / "index",
        description="the embedded reference library and the cached image features",
    )
    index_noncommercial: bool = Field(
        True, description="put the non-commercial ieee8023 development cases in the reference library when present"
    )

    # --- tools ---------------------------------------------------------------------------------------------
    tool_timeout_s: float = 30.0
    disabled_tools: list[str] = Field(default_factory=list)
    lab_results_limit: int = Field(25, description="most recent distinct lab codes given to the model")
    record_recent_days: int | None = Field(
        365, ge=1, description="labs and vitals last measured longer ago are left out of the first view "
        "(the model can ask for all labs); None: no limit",
    )

    # --- web workspace -------------------------------------------------------------------------------------
    workspace_host: str = Field("127.0.0.1", description="a non-loopback address needs users and a secret")
    workspace_port: int = 8300
    workspace_dir: Path | None = Field(
        None, description="users, cases and their outputs (default: state_dir/workspace)"
    )
    workspace_secret: SecretStr | None = Field(
        None, description="signs session cookies; default: generated once into the workspace folder"
    )
    workspace_secure_cookies: bool = Field(False, description="mark cookies Secure (behind an HTTPS proxy)")
    workspace_max_upload_mb: int = Field(40, ge=1, le=500, description="largest radiograph a clinician may upload")
    workspace_parallel_consults: int = Field(1, ge=1, le=16, description="consults running at once; more queue")
    workspace_queued_consults: int = Field(
        8, ge=0, le=200, description="consults that may wait for a slot; beyond them a new one is refused as busy"
    )
    image_archive: list[Path] | None = Field(
        None, description="folders of DICOM files that the record's ImagingStudy resources point to, by Study "
        "Instance UID: where earlier radiographs are found (default: out/cases and state_dir/cases, where "
        "`medconsult cases import` writes them)"
    )
    workspace_case_dirs: list[Path] | None = Field(
        None, description="folders of case files offered as new cases (default: cases/, state_dir/cases, out/cases)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    # --- derived values ------------------------------------------------------------------------------------
    @property
    def uses_embedded_llm(self) -> bool:
        return not self.llm_base_url

    @property
    def uses_local_fhir(self) -> bool:
        return not self.fhir_base_url

    @property
    def local_fhir_url(self) -> str:
        return f"http://{self.fhir_host}:{self.fhir_port}/fhir"

    @property
    def effective_fhir_url(self) -> str:
        return (self.fhir_base_url or self.local_fhir_url).rstrip("/")

    @property
    def effective_fhir_auth(self) -> FhirAuthMode:
        if self.fhir_auth is not None:
            return self.fhir_auth
        return "bearer" if self.fhir_bearer_token else "none"

    @cached_property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        for candidate in (Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"):
            if candidate.is_dir():
                return candidate
        return REPO_ROOT.parent / "shared" / "data"

    @property
    def resolved_checkpoint_db(self) -> Path:
        return self.checkpoint_db or self.state_dir / "checkpoints.sqlite"

    @property
    def resolved_workspace_dir(self) -> Path:
        return self.workspace_dir or self.state_dir / "workspace"

    @property
    def resolved_image_archive(self) -> list[Path]:
        if self.image_archive is not None:
            return self.image_archive
        return [Path("out") / "cases", self.state_dir / "cases"]

    @property
    def resolved_workspace_case_dirs(self) -> list[Path]:
        if self.workspace_case_dirs is not None:
            return self.workspace_case_dirs
        return [Path("cases"), self.state_dir / "cases", Path("out") / "cases"]

    @property
    def fhir_snapshot(self) -> Path:
        return self.state_dir / "fhir" / "snapshot.json"


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")

