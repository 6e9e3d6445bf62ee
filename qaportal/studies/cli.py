"""Commands: import-study, verify-storage, deidentify."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import click
import sqlalchemy as sa
from flask.cli import with_appcontext


@click.command("import-study")
@with_appcontext
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=False))
@click.option("--owner", "owner_email", required=True, help="E-mail of the owning radiologist.")
def import_study(paths: tuple[str, ...], owner_email: str) -> None:
    """Import DICOM files, folders and zips; print a JSON summary.

    Exit 0 when every file was stored or was a duplicate, 1 when some failed (the others
    are stored), 2 when nothing was stored.
    """
    from qaportal.auth.service import find_user
    from qaportal.studies import jobs

    owner = find_user(owner_email)
    if owner is None or not owner.active:
        click.echo(f"error: no active account with the e-mail {owner_email}", err=True)
        sys.exit(2)
    batch = jobs.new_batch(owner, "cli")
    inputs = []
    for p in paths:
        if not Path(p).exists():
            batch.errors = [*batch.errors, {"file": p, "error": "no such file or folder"}]
        else:
            inputs.append((p, p))
    started = time.perf_counter()
    if inputs:
        jobs.import_files(inputs, owner.id, batch.id)
    from qaportal import audit
    from qaportal.extensions import db

    jobs.finish_batch(batch)
    audit.record("study.upload_finished", batch, actor=owner, source="cli",
                 stored=batch.stored, duplicates=batch.duplicates, conflicts=batch.conflicts)
    db.session.commit()
    summary = jobs.as_summary(batch)
    click.echo(json.dumps(summary, indent=2))
    elapsed = time.perf_counter() - started
    click.echo(f"{batch.stored} stored, {batch.duplicates} duplicates, "
               f"{len(batch.errors)} not stored, in {elapsed:.1f} s", err=True)
    sys.exit(jobs.exit_code(batch))


@click.command("verify-storage")
@with_appcontext
@click.option("--delete-orphans", is_flag=True,
              help="Remove stored files no database row refers to (left by a crash).")
@click.option("--archive-orphans", is_flag=True,
              help="DICOMweb store: also list (QIDO-RS) the archive's instances no key maps "
                   "to; only for an archive the portal does not share.")
def verify_storage(delete_orphans: bool, archive_orphans: bool) -> None:
    """Re-hash every stored file; report missing, altered and orphaned files (exit 1 if any).

    With the DICOMweb store every instance is fetched from the archive (WADO-RS) and hashed.
    """
    from qaportal.dicom import StoredFileCorrupt, StoredFileMissing
    from qaportal.extensions import db
    from qaportal.models import Instance
    from qaportal.studies.storage import image_store, stale_upload_files

    store = image_store()
    missing, altered, unreadable, checked = [], [], [], 0
    keys = set()
    rows = db.session.execute(
        sa.select(Instance.id, Instance.storage_key, Instance.sha256).order_by(Instance.id)
    )
    for inst_id, key, sha in rows:
        keys.add(key)
        checked += 1
        try:
            store.verify(key, sha)
        except StoredFileMissing:
            missing.append(inst_id)
        except StoredFileCorrupt:
            altered.append(inst_id)
        except OSError as exc:  # the archive did not answer (its type only: no details)
            unreadable.append((inst_id, type(exc).__name__))
    orphans = [k for k in store.iter_keys() if k not in keys] if hasattr(store, "iter_keys") \
        else []
    stale = store.stale_temp_files() if hasattr(store, "stale_temp_files") else []
    stale += stale_upload_files()  # left by a request killed mid-upload
    orphans += [str(p) for p in stale]
    if delete_orphans:
        for key in orphans:
            if key.startswith("/"):
                path = Path(key)
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            else:
                store.delete(key)
        db.session.commit()  # a DICOMweb store's mappings of the deleted keys
    unmapped = store.unmapped_instances() if archive_orphans and \
        hasattr(store, "unmapped_instances") else []
    for inst_id in missing:
        click.echo(f"missing: instance {inst_id}")
    for inst_id in altered:
        click.echo(f"altered: instance {inst_id} (SHA-256 differs from the one recorded)")
    for inst_id, why in unreadable:
        click.echo(f"unreadable: instance {inst_id} (the store failed: {why})")
    if unmapped:
        click.echo(f"{len(unmapped)} instances in the archive that no key maps to "
                   "(left in place: remove them in the archive)")
    verb = "deleted" if delete_orphans else "found"
    click.echo(f"checked {checked} files: {len(missing)} missing, {len(altered)} altered, "
               f"{len(orphans)} orphaned {verb}")
    sys.exit(1 if missing or altered or unreadable or unmapped
             or (orphans and not delete_orphans) else 0)


@click.command("deidentify")
@with_appcontext
@click.argument("src", type=click.Path(exists=True))
@click.argument("dest", type=click.Path())
@click.option("--retain-dates", is_flag=True, help="Keep dates, shifted consistently.")
@click.option("--retain-patient-characteristics", is_flag=True, help="Keep sex, age, size.")
@click.option("--retain-device-identity", is_flag=True, help="Keep device identity.")
@click.option("--pseudonym", default="ANONYMOUS", show_default=True,
              help="Replaces the patient's name and ID.")
def deidentify(src: str, dest: str, retain_dates: bool, retain_patient_characteristics: bool,
               retain_device_identity: bool, pseudonym: str) -> None:
    """De-identify the DICOM files in SRC (a file, folder or zip) into the folder DEST."""
    import secrets

    from qaportal.dicom import DeidContext, deidentify_file, iter_files
    from qaportal.studies.deid import deid_options

    options = deid_options(retain_dates=retain_dates,
                           retain_patient_characteristics=retain_patient_characteristics,
                           retain_device_identity=retain_device_identity)
    secret = secrets.token_bytes(32)
    ctx = DeidContext(secret=secret, pseudonym=pseudonym, pseudonym_id=pseudonym,
                      options=options, date_shift_days=-(secrets.randbelow(3650) + 1)
                      if retain_dates else 0)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    written, errors, review = 0, [], []
    for item in iter_files([src]):
        if not item.ok:
            errors.append({"file": item.name, "error": item.error})
            continue
        target = out / f"{written + 1:06d}.dcm"
        try:
            result = deidentify_file(item.path, target, ctx)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported by name
            target.unlink(missing_ok=True)
            errors.append({"file": item.name, "error": f"not de-identified: {exc}"})
            continue
        written += 1
        if result.pixel_review_needed:
            review.append({"file": target.name, "reason": result.review_reason})
    click.echo(json.dumps({"written": written, "errors": errors, "pixel_review": review},
                          indent=2))
    sys.exit(0 if not errors else (1 if written else 2))
