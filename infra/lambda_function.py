"""One small factory for the project's Python Lambda functions, with Docker-free bundling.

``aws_lambda_python_alpha.PythonFunction`` bundles inside a Docker container; Sluice must synth
and deploy on machines without a Docker engine. ``PipLocalBundling`` installs the function's
requirements with ``pip install --platform manylinux_2_34_<arch> ... --only-binary=:all:`` for
the Lambda runtime's Python version (wheels only, so the result is what Lambda can import whatever
the build host is), then copies the function's source packages beside them. The Python 3.12+
runtimes run on Amazon Linux 2023 (glibc 2.34), so wheels up to manylinux_2_34 qualify; recent
pyarrow releases publish manylinux_2_28 wheels only. Bundles are cached
by content hash under ``.cache/bundles/`` so repeated synths cost a copy, not a download.

Every function gets: its own role (no AWS managed policies), its own log group encrypted with
the stage key and kept for the stage's retention, its environment encrypted with the stage key,
JSON logs, X-Ray tracing, the Powertools service/namespace settings, and, when the stage has
private networking, a place in the VPC (private subnets, a security group of its own, interface
endpoints for the AWS services it declares it calls). Every checkov check it does not satisfy
by construction it skips with the reason the caller gives (dead-letter queue, concurrency) or
the stage's (VPC).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import native
from infra.config import StageConfig
from infra.log_groups import encrypted_log_group
from infra.nag import checkov_skip
from infra.network import Network, Workload, skip_outside_vpc

REPO_ROOT = Path(__file__).resolve().parent.parent
#: packages the Lambda Python runtime already provides: never ship a second copy
RUNTIME_PROVIDED = (
    "boto3", "boto3-*", "botocore", "botocore-*", "s3transfer", "s3transfer-*",
    "jmespath", "jmespath-*", "urllib3", "urllib3-*", "dateutil", "python_dateutil-*",
    "six.py", "six-*",
)  # fmt: skip
CACHE_DIR = REPO_ROOT / ".cache" / "bundles"
METRICS_NAMESPACE = "Sluice"
#: never copied from the sources; ``*.so`` are host builds of native code (``make native``):
#: a bundle gets its own, built for its platform
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "*.md", "*.so")


def _files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_file():
            out.append(path)
        else:
            out.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".so"
            )
    return out


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    """Bundle ``sources`` (repo-relative) plus pip-installed ``requirements`` into the asset.

    ``native`` adds the native HMAC library (``infra/native.py``), cross-compiled for
    ``architecture``, where ``lambdas/preprocess`` loads it.
    """

    def __init__(
        self,
        *,
        sources: Sequence[str],
        requirements: str | None,
        architecture: str,
        python_version: str,
        exclude: Sequence[str] = (),
        native: bool = False,
    ) -> None:
        self.sources = [REPO_ROOT / s for s in sources]
        self.exclude = tuple(exclude)
        self.native = native
        self.requirements = REPO_ROOT / requirements if requirements else None
        self.machine = "aarch64" if architecture == "arm64" else "x86_64"
        self.platforms = [f"manylinux_2_{v}_{self.machine}" for v in (34, 28, 17)]
        self.python_version = python_version

    @property
    def asset_hash(self) -> str:
        """Content hash of everything that goes into the bundle."""
        digest = hashlib.sha256(
            f"{self.platforms}|{self.python_version}|{self.exclude}|{self.native}".encode()
        )
        inputs = self.sources + ([self.requirements] if self.requirements else [])
        for file in _files(inputs):
            digest.update(str(file.relative_to(REPO_ROOT)).encode())
            digest.update(file.read_bytes())
        return digest.hexdigest()

    def _pip_install(self, target: Path) -> None:
        if self.requirements is None:
            return
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--only-binary=:all:", "--implementation", "cp",
            *(arg for platform in self.platforms for arg in ("--platform", platform)),
            "--python-version", self.python_version,
            "--target", str(target), "-r", str(self.requirements),
        ]  # fmt: skip
        subprocess.run(cmd, check=True)

    def _prune(self, build: Path) -> None:
        """Remove what the function never imports (``exclude`` globs, relative to the root)."""
        for pattern in self.exclude:
            for path in sorted(build.glob(pattern), reverse=True):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()

    def _interpreter(self) -> str | None:
        """An interpreter of the runtime's Python version on this machine, if there is one."""
        pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        for candidate in sorted(pyenv_root.glob(f"versions/{self.python_version}.*/bin/python")):
            return str(candidate)
        found = shutil.which(f"python{self.python_version}")
        if found and "/shims/" not in found:  # a pyenv shim may name a version it cannot run
            return found
        return None

    def _compile(self, build: Path) -> None:
        """Ship bytecode: ``/var/task`` is read-only, so Lambda cannot cache what it compiles.

        Without ``.pyc`` files every cold start compiles pyarrow's, numpy's and Powertools'
        Python sources again (measured: 580 ms instead of 330 ms to import the preprocess
        handler). Needs an interpreter of the runtime's version; without one the bundle stays
        source-only, which works, only slower to start. ``unchecked-hash`` pycs do not depend
        on file times, so the same sources give the same bundle.
        """
        python = self._interpreter()
        if python is None:
            print(f"bundling: no python{self.python_version} here; shipping sources only")
            return
        subprocess.run(
            [python, "-m", "compileall", "-q", "-j", "0",
             "--invalidation-mode", "unchecked-hash", str(build)],
            check=True,
        )  # fmt: skip

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        cached = CACHE_DIR / self.asset_hash
        if not cached.is_dir():
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
                build = Path(tmp) / "bundle"
                build.mkdir()
                self._pip_install(build)
                self._prune(build)
                self._compile(build)
                for src in self.sources:
                    dest = build / src.relative_to(REPO_ROOT)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if src.is_dir():
                        shutil.copytree(src, dest, ignore=_IGNORED, dirs_exist_ok=True)
                    else:
                        shutil.copy2(src, dest)
                if self.native:
                    native.build_for_lambda(build, self.machine)
                build.rename(cached)
        shutil.copytree(cached, output_dir, dirs_exist_ok=True)
        return True


def python_code(
    *,
    sources: Sequence[str],
    requirements: str | None,
    config: StageConfig,
    exclude: Sequence[str] = (),
    native: bool = False,
) -> lambda_.Code:
    """An asset for a function whose handler lives in ``sources`` (repo-relative paths)."""
    bundling = PipLocalBundling(
        sources=sources,
        requirements=requirements,
        architecture=config.lambda_architecture,
        python_version=config.lambda_python,
        exclude=exclude,
        native=native,
    )
    return lambda_.Code.from_asset(
        str(REPO_ROOT / sources[-1]),  # what CDK uses when bundling is skipped (tests)
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=bundling.asset_hash,
        bundling=cdk.BundlingOptions(
            image=cdk.DockerImage.from_registry("unused-local-bundling-only"),
            local=bundling,
        ),
    )


class PythonFunction(Construct):
    """A Sluice Lambda function: ``lambdas/<name>/handler.py``'s ``handler``.

    The asset holds ``lambdas/`` (the function and the shared observability module),
    ``datasets/`` when ``with_specs`` is set, the ``packages`` of ``lambdas/`` it also imports,
    and ``lambdas/<name>/requirements.txt`` less the
    ``exclude`` globs (what the function never imports, or what the runtime already has), and
    with ``native`` the native HMAC library built for the function's architecture.

    Security settings every caller must decide (no silent defaults):

    - ``key``: the stage key; it encrypts the environment and the log group.
    - failures: ``dead_letter_queue`` for a function invoked asynchronously (EventBridge,
      S3, SNS: Lambda retries twice, then the event lands there), or ``no_dlq_reason`` saying
      where failures go instead (an SQS source's own DLQ, a synchronous caller that sees
      the error). One of the two is required.
    - concurrency: ``reserved_concurrency`` is opt-in (a new account may have an account
      limit of 10, and any reservation then fails the deploy); without it
      ``concurrency_note`` says what caps the function (an event source's
      MaximumConcurrency, a Map's MaxConcurrency, an API's throttling).
    - ``network`` (the stage's, or None) and ``uses``: the AWS services the code calls other
      than S3 and DynamoDB (``secretsmanager``, ``events``, ``sagemaker.api``, ...), for which
      the network adds interface endpoints.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        config: StageConfig,
        key: kms.IKey,
        description: str,
        environment: Mapping[str, str] | None = None,
        timeout: Duration | None = None,
        memory_size: int = 512,
        dead_letter_queue: sqs.IQueue | None = None,
        no_dlq_reason: str | None = None,
        reserved_concurrency: int | None = None,
        concurrency_note: str | None = None,
        network: Network | None = None,
        uses: Sequence[str] = (),
        ephemeral_storage_mb: int | None = None,
        with_specs: bool = False,
        exclude: Sequence[str] = (),
        native: bool = False,
        packages: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id_)
        if (dead_letter_queue is None) == (no_dlq_reason is None):
            raise ValueError(
                f"{name}: give either dead_letter_queue (asynchronous invocations) or "
                "no_dlq_reason (where its failures go instead), not both or neither"
            )
        if reserved_concurrency is None and not concurrency_note:
            raise ValueError(
                f"{name}: without reserved_concurrency, say what caps it (concurrency_note)"
            )
        package = REPO_ROOT / "lambdas" / name
        requirements = package / "requirements.txt"
        sources = ["lambdas/__init__.py"]
        if (REPO_ROOT / "lambdas" / "shared").is_dir():
            sources.append("lambdas/shared")
        if with_specs:
            sources.append("datasets")
        sources += [f"lambdas/{package}" for package in packages]
        sources.append(f"lambdas/{name}")

        self.log_group = encrypted_log_group(self, "Logs", config=config, key=key)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Sluice {config.stage} {name} function",
        )
        self.log_group.grant_write(self.role)
        self.network: Workload | None = None
        if network is not None:
            network.use(uses)
            self.network = network.workload(
                self, "SecurityGroup", description=f"Sluice {config.stage} {name} function"
            )
            # before the function: Lambda creates its network interfaces with the role
            network_policy = network.grant_interfaces(
                self, self.role, self.network, service="lambda"
            )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=config.runtime,
            architecture=config.architecture,
            handler=f"lambdas.{name}.handler.handler",
            code=python_code(
                sources=sources,
                requirements=str(requirements.relative_to(REPO_ROOT))
                if requirements.is_file()
                else None,
                config=config,
                exclude=exclude,
                native=native,
            ),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            dead_letter_queue=dead_letter_queue,
            ephemeral_storage_size=cdk.Size.mebibytes(ephemeral_storage_mb)
            if ephemeral_storage_mb
            else None,
            environment={
                "POWERTOOLS_SERVICE_NAME": name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "SLUICE_STAGE": config.stage,
                **(environment or {}),
            },
            environment_encryption=key,
            vpc=network.vpc if network is not None else None,
            vpc_subnets=self.network.subnets if self.network is not None else None,
            security_groups=[self.network.security_group] if self.network is not None else None,
        )
        if network is not None:
            self.function.node.add_dependency(network_policy)
        self._decrypt_environment(key)
        self._trace_with_xray()
        cdk.Validations.of(self.function).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.13 is pinned on purpose: it is the newest runtime that the "
                "local cloud's interpreter and every pinned wheel (pyarrow) support; "
                "it is a supported Lambda runtime.",
            )
        )
        if no_dlq_reason is not None:
            checkov_skip(self.function, "CKV_AWS_116", no_dlq_reason)
        if reserved_concurrency is None and concurrency_note:
            checkov_skip(
                self.function,
                "CKV_AWS_115",
                "Reserved concurrency is opt-in per stage: a new account may have an account "
                "concurrency limit of 10, and any reservation then fails the deploy. "
                f"{concurrency_note}",
            )
        if network is None:
            skip_outside_vpc(self.function, f"The {name} function")

    def _decrypt_environment(self, key: kms.IKey) -> None:
        """Lambda decrypts the environment with the function's role at start-up: Decrypt on
        the stage key, only under the encryption context Lambda sets (this function's ARN)."""
        iam.Policy(
            self,
            "DecryptEnvironment",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:EncryptionContext:aws:lambda:FunctionArn": (
                                self.function.function_arn
                            )
                        }
                    },
                )
            ],
        )

    def _trace_with_xray(self) -> None:
        """Active X-Ray tracing, its permissions in a policy of their own.

        ``Tracing.ACTIVE`` would put ``xray:*`` on ``*`` into the role's default policy, where a
        cdk-nag acknowledgment of ``Resource::*`` would also hide later grants. X-Ray's
        ``PutTraceSegments``/``PutTelemetryRecords`` support no resource-level permissions, so
        they stand alone here, acknowledged alone.
        """
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        cfn.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
        xray = iam.Policy(
            self,
            "XRay",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                )
            ],
        )
        cdk.Validations.of(xray).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords do not support "
                "resource-level permissions; this policy holds nothing else.",
            )
        )
