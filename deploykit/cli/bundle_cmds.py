"""``deploykit keygen | bundle | publish | pull | verify-bundle``: parse flags, call deploykit.bundle, print.

Library imports happen inside the commands so ``deploykit --help`` stays fast. Errors raised by the
library go through the one table in deploykit.cli.errors (verification failures exit 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from deploykit.cli.options import JsonOutput
from deploykit.cli.output import emit

TrustedKeys = Annotated[list[Path], typer.Option("--trusted-key", "-k", help="Publisher public key (.pub); repeat to trust several.")]

KEYGEN_HELP = """Create an Ed25519 signing key pair: DIR/NAME.key (private, mode 0600) and DIR/NAME.pub.

Keep the .key secret (a CI secret store); ship the .pub inside your app and give it to `pull --trusted-key`.

With --model-signing, create the second pair instead: DIR/NAME.ms.key and DIR/NAME.ms.pub, ECDSA on P-256, for `bundle --model-signing-key` (an OpenSSF model-signing signature over the model files, which a security team checks with `model_signing verify key`). model-signing takes elliptic-curve keys (P-256, P-384, P-521) only, so the Ed25519 key cannot make it.

[bold]Examples[/]

  deploykit keygen --out keys/

  deploykit keygen --out keys/ --model-signing

  deploykit keygen --out keys/ --name release-2026 --json
"""

BUNDLE_HELP = """Package converted artifacts into signed, reproducible app bundles: one zip per (platform, variant).

Each zip holds manifest.json (a signed DSSE envelope listing every file with role, length and sha256, the model's inputs/outputs, compatibility and provenance) first, then the model (model/model.tflite or model/model.mlpackage/...), assets/labels.txt and integration/ (Swift or Kotlin code and a README rendered with the model's real input names, shapes, normalization and labels). Metadata is also embedded in the model itself. Inputs, outputs and provenance come from the deploykit-report.json that `deploykit convert` wrote next to the artifacts. The same inputs give byte-identical zips (set SOURCE_DATE_EPOCH to choose the timestamp stored in them).

The sequence (the anti-rollback counter apps compare) defaults to major*1e6 + minor*1e3 + patch.

[bold]Examples[/]

  deploykit bundle dist/net.fp32.tflite dist/net.fp32.mlpackage --name com.example.classifier \\
      --version 1.2.0 --labels labels.txt --mean 127.5 --std 127.5 --sign-key keys/deploykit.key --out bundles/

  # also an OpenSSF model-signing signature over model/ and assets/ (model-signing/model.sig in each zip)
  deploykit bundle dist/net.fp32.tflite --name com.example.classifier --version 1.2.0 \\
      --sign-key keys/deploykit.key --model-signing-key keys/deploykit.ms.key --out bundles/

  # roll back to 1.1.0: the old artifacts under a higher sequence
  deploykit bundle old/net.fp32.tflite --name com.example.classifier --version 1.1.0 --sequence 1002001 \\
      --sign-key keys/deploykit.key --out bundles/
"""

PUBLISH_HELP = """Publish bundles to a static repository (any web server can host the directory) and sign the channel index.

Writes bundles/<sha256>.zip, releases/<sha256>.json and, last and atomically, channels/CHANNEL.json: a signed index with a version counter, an expiry and staged-rollout buckets. With no BUNDLE arguments, re-signs the index with a fresh expiry (run it from a scheduled job).

[bold]Examples[/]

  deploykit publish bundles/*.zip --repo site/models --channel stable --rollout 10 --sign-key keys/deploykit.key

  deploykit publish bundles/*.zip --repo site/models --channel stable --rollout 100 --sign-key keys/deploykit.key

  deploykit publish --repo site/models --channel stable --sign-key keys/deploykit.key   # refresh expiry
"""

PULL_HELP = """Install the channel's current model the way an app should: the reference client.

Checks the index signature, that versions only grow and the index has not expired, then the release and bundle hashes and lengths while streaming, every file against the signed manifest; unpacks into a temporary directory and switches DEST/NAME/current to it in one step. Remembers the highest versions seen in DEST/.deploykit-state.json.

Updates are deltas by default: when a version is installed, pull reads the new bundle's signed manifest (stored beside it in the repository), fetches only the chunks (content-addressed pieces of each file, one per tensor where the format allows) that the installed files do not hold, rebuilds every file and checks its sha256 against the signed manifest before installing; a missing or altered chunk is refused like a tampered bundle (exit 4, nothing installed). When a delta would not be smaller, or with --no-delta, it fetches the whole bundle. The output says which, and how many bytes were fetched.

When the channel runs an experiment on the model (`deploykit experiment start`), the device's arm decides before the rollout; the output names the arm, and --events appends an install event (once per device and arm) to a JSONL log that `deploykit experiment record` and `report` continue.

[bold]Examples[/]

  deploykit pull --repo https://models.example.com/repo --channel stable --name com.example.classifier \\
      --trusted-key deploykit.pub --dest ./models --platform android

  deploykit pull --repo site/models --name com.example.classifier --trusted-key deploykit.pub --dest ./models \\
      --platform ios --device-id test-device-7 --json

  deploykit pull --repo site/models --name com.example.classifier --trusted-key deploykit.pub --dest ./models \\
      --platform android --events events.jsonl
"""

VERIFY_HELP = """Verify a bundle: exit 0 only if it is intact and signed by a trusted key, else exit 4.

Checks the zip structure (no unsafe paths, links, duplicates or oversized entries), the manifest signature over its exact bytes, the manifest schema, and every file's length and sha256.

[bold]Examples[/]

  deploykit verify-bundle bundles/com.example.classifier-1.2.0-android-fp32.zip --trusted-key keys/deploykit.pub

  deploykit verify-bundle bundle.zip -k keys/a.pub -k keys/b.pub --threshold 2 --json
"""


def register(app: typer.Typer) -> None:
    app.command("keygen", help=KEYGEN_HELP, no_args_is_help=True)(keygen)
    app.command("bundle", help=BUNDLE_HELP, no_args_is_help=True)(bundle)
    app.command("publish", help=PUBLISH_HELP, no_args_is_help=True)(publish)
    app.command("pull", help=PULL_HELP, no_args_is_help=True)(pull)
    app.command("verify-bundle", help=VERIFY_HELP, no_args_is_help=True)(verify_bundle)


def _floats(text: Optional[str], flag: str) -> Optional[tuple[float, ...]]:
    from deploykit.core.errors import UsageError

    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give numbers separated by commas, e.g. 0.485,0.456,0.406") from None


def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for NAME.key and NAME.pub.")],
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "deploykit",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
    model_signing: Annotated[bool, typer.Option("--model-signing", help="Make the ECDSA P-256 pair for OpenSSF model signing (NAME.ms.key, NAME.ms.pub) instead.")] = False,
    json_output: JsonOutput = False,
) -> None:
    if model_signing:
        from deploykit.bundle.openssf import generate_model_signing_keypair

        private, public, hint = generate_model_signing_keypair(out, name, force=force)
        emit({"private_key": str(private), "public_key": str(public), "type": "ecdsa-p256", "hint": hint}, json_output,
              [f"private key {private} (ECDSA P-256 for model-signing, mode 0600: keep it secret)",
               f"public key  {public}", f"key hint    {hint} (sha256 of the .ms.pub, recorded in each signature)"])
        return
    from deploykit.bundle.signing import generate_keypair

    private, public, keyid = generate_keypair(out, name, force=force)
    emit({"private_key": str(private), "public_key": str(public), "keyid": keyid}, json_output,
          [f"private key {private} (mode 0600: keep it secret)", f"public key  {public}", f"key id      {keyid}"])


def bundle(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts written by `deploykit convert` (.tflite files, .mlpackage directories, .pte programs).")],
    name: Annotated[str, typer.Option("--name", help="Reverse-DNS model name, e.g. com.example.classifier.")],
    version: Annotated[str, typer.Option("--version", help="Semantic version, e.g. 1.2.0.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the bundles.")] = Path("bundles"),
    sequence: Annotated[Optional[int], typer.Option("--sequence", help="Anti-rollback counter (default: from --version).")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Class labels, one per line (matched to the output with that many classes).")] = None,
    mean: Annotated[Optional[str], typer.Option("--mean", help="Input normalization mean: one value or one per channel, comma-separated.")] = None,
    std: Annotated[Optional[str], typer.Option("--std", help="Input normalization std, like --mean.")] = None,
    sign_key: Annotated[Optional[list[Path]], typer.Option("--sign-key", help="Private key from `deploykit keygen` (repeat to co-sign).")] = None,
    model_signing_key: Annotated[Optional[Path], typer.Option("--model-signing-key", help="ECDSA key from `deploykit keygen --model-signing`: also sign model/ and assets/ with OpenSSF model signing (model-signing/model.sig).")] = None,
    author: Annotated[str, typer.Option("--author", help="Embedded in the model metadata.")] = "",
    license_: Annotated[str, typer.Option("--license", help="Embedded in the model metadata.")] = "",
    description: Annotated[str, typer.Option("--description", help="Embedded in the model metadata.")] = "",
    min_android_api: Annotated[int, typer.Option("--min-android-api", help="Declared minimum Android API level for .tflite bundles.")] = 21,
    templates: Annotated[Optional[Path], typer.Option("--templates", help="Your own integration templates directory.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="deploykit-report.json when it is not next to the artifacts.")] = None,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.builder import BundleOptions
    from deploykit.bundle.builder import bundle as build
    from deploykit.bundle.openssf import load_model_signing_key
    from deploykit.bundle.signing import load_signing_key

    options = BundleOptions(
        name=name, version=version, out=out, sequence=sequence, labels=labels,
        mean=_floats(mean, "--mean"), std=_floats(std, "--std"),
        sign_keys=tuple(load_signing_key(k) for k in sign_key or ()), author=author, license=license_,
        description=description, min_android_api=min_android_api, templates=templates, report=report,
        model_signing_key=load_model_signing_key(model_signing_key) if model_signing_key else None,
    )
    built = build(artifacts, options)
    lines = [f"{b.path}  {b.length} bytes  sha256 {b.sha256[:16]}  sequence {b.manifest['sequence']}" for b in built]
    if not options.sign_keys:
        lines.append("warning: bundles are unsigned; `publish`, `pull` and `verify-bundle` will refuse them")
    if model_signing_key:
        pub = model_signing_key.with_suffix(".pub") if model_signing_key.suffix == ".key" else "PUB"
        lines.append(f"model-signing/model.sig in each: unzip a bundle into DIR, then `model_signing verify key DIR "
                     f"--signature DIR/model-signing/model.sig --public_key {pub}`")
    emit({"bundles": [b.to_json() for b in built]}, json_output, lines)


def publish(
    bundles: Annotated[Optional[list[Path]], typer.Argument(help="Bundles of one release per model (none: only re-sign the index).")] = None,
    repo: Annotated[Path, typer.Option("--repo", help="Repository directory (created if missing).")] = Path("repo"),
    channel: Annotated[str, typer.Option("--channel", help="Channel name.")] = "stable",
    sign_key: Annotated[Optional[Path], typer.Option("--sign-key", help="Private key that signs the channel index.")] = None,
    rollout: Annotated[float, typer.Option("--rollout", help="Percent of devices that get this release (may only grow).")] = 100.0,
    expires_days: Annotated[float, typer.Option("--expires-days", help="Days until clients refuse the index unless re-signed.")] = 7.0,
    bundle_key: Annotated[Optional[list[Path]], typer.Option("--bundle-key", help="Public key the bundles must be signed by (default: the --sign-key's).")] = None,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.repository import publish as run
    from deploykit.bundle.signing import load_public_key, load_signing_key
    from deploykit.core.errors import UsageError

    if sign_key is None:
        raise UsageError("--sign-key is required: the channel index must be signed")
    result = run(bundles or [], repo, channel, load_signing_key(sign_key), rollout=rollout, expires_days=expires_days,
                 bundle_keys=[load_public_key(k) for k in bundle_key or ()])
    lines = [f"channel {result.channel} version {result.version} (expires {result.expires}) in {result.repo}"]
    for model, entry in sorted(result.models.items()):
        lines.append(f"  {model} {entry['version']} sequence {entry['sequence']} rollout {entry['rollout']['percent']:g}%")
    emit(result.to_json(), json_output, lines)


def pull(
    repo: Annotated[str, typer.Option("--repo", help="Repository URL (http/https) or directory.")],
    name: Annotated[str, typer.Option("--name", help="Model name.")],
    trusted_key: TrustedKeys,
    dest: Annotated[Path, typer.Option("--dest", help="Install directory (keeps the state file).")],
    channel: Annotated[str, typer.Option("--channel", help="Channel name.")] = "stable",
    device_id: Annotated[Optional[str], typer.Option("--device-id", help="Stable id for rollout buckets (default: a random id kept in DEST).")] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="android or ios, when the release has both.")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="Variant, when the release has several (an experiment's arm sets its own).")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="JSONL event log: an install event when the device's experiment arm is in place.")] = None,
    no_delta: Annotated[bool, typer.Option("--no-delta", help="Always fetch the whole bundle (default: only the chunks the installed version lacks).")] = False,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.client import pull as run
    from deploykit.bundle.signing import load_public_key

    result = run(repo, channel, name, [load_public_key(k) for k in trusted_key], dest, device_id=device_id,
                 platform=platform, variant=variant, delta=not no_delta, events=events)
    if result.status == "not-in-rollout":
        line = f"{name}: this device (bucket {result.bucket:.2f}) is outside the rollout and there is no previous release"
    else:
        line = (f"{name} {result.version} (sequence {result.sequence}, {result.platform}/{result.variant}) "
                f"{result.status}: {result.path}")
        if result.arm:
            line += f" [experiment {result.experiment}, arm {result.arm}]"
        elif result.status == "kept":
            line += " (the installed model, from an experiment arm, is newer than the channel's offer)"
    if result.transfer:
        line += "\n" + _transfer_line(result.transfer)
    emit(result.to_json(), json_output, [line])


def _transfer_line(t: dict) -> str:
    if t["method"] == "delta":
        return (f"  {t['bytes']} bytes fetched as a delta: {t['chunks_fetched']} of {t['chunks']} chunks, "
                f"{t['bytes_reused']} bytes reused from the installed version (the whole bundle is {t['bundle_bytes']} bytes)")
    return f"  {t['bytes']} bytes fetched: the whole bundle ({t['fallback']})"


def verify_bundle(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle zip.")],
    trusted_key: TrustedKeys,
    threshold: Annotated[int, typer.Option("--threshold", help="Distinct trusted keys that must have signed.")] = 1,
    json_output: JsonOutput = False,
) -> None:
    from deploykit.bundle.signing import load_public_key
    from deploykit.bundle.verify import verify_bundle as run

    result = run(bundle_path, [load_public_key(k) for k in trusted_key], threshold=threshold)
    m = result.manifest
    emit(result.to_json(), json_output,
          [f"OK {bundle_path}: {m.name} {m.version} (sequence {m.sequence}, {m.platform}/{m.variant}), "
           f"{len(m.files)} files verified, signed by {', '.join(k[:16] for k in result.keyids)}"])
