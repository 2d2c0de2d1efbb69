"""Workspaces and their members: the one place that creates, changes and deletes them.

REST, the admin console and the management commands all call these functions, so every face
keeps the same rules:

- a workspace always keeps at least one owner (the last one can be neither demoted nor removed);
- deleting a workspace deletes each panel through the panel service first (``unmount`` runs and
  the panel's sockets close with 4404);
- after any change of who may do what, the workspace's open sockets are told (on every process,
  through the channel layer) so that a removed member's socket closes at once with 4403 and a
  downgraded member's rights shrink at once.

Membership changes lock the workspace row first, so concurrent changes of one workspace run one
after another and the owner count they check cannot go stale.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete

from workspaces.models import Membership, Panel, Role, Workspace
from workspaces.services import panels as panel_service
from workspaces.services.errors import ErrorCode
from workspaces.services.panels import ServiceError, in_worker
from workspaces.services.publish import announce_access_change

logger = logging.getLogger(__name__)

LAST_OWNER = "A workspace must keep at least one owner: make another member owner first"
# Panels created while a workspace is being deleted are picked up by another round.
DELETE_ROUNDS = 5


def _announce_after_commit(workspace_pk: int, user_pk: int | None) -> None:
    transaction.on_commit(lambda: announce_access_change(workspace_pk, user_pk))


def membership_deleted(sender: type[Membership], instance: Membership, **kwargs: Any) -> None:
    """Memberships that go with their user (a user deleted in the admin) end that user's sockets too."""
    _announce_after_commit(instance.workspace_id, instance.user_id)


def connect_signals() -> None:
    """Called once from the app's ``ready``."""
    post_delete.connect(membership_deleted, sender=Membership, dispatch_uid="nexus-membership-deleted")


def _locked(workspace: Workspace) -> Workspace:
    """The workspace row, locked until the surrounding transaction ends (call inside one)."""
    try:
        return Workspace.objects.select_for_update().get(pk=workspace.pk)
    except Workspace.DoesNotExist:
        raise ServiceError(ErrorCode.NOT_FOUND, f"Workspace '{workspace.slug}' no longer exists") from None


# ---------------------------------------------------------------- workspaces


def create_workspace(slug: str, name: str, owner: Any = None, max_panels: int | None = None) -> Workspace:
    """A new workspace; ``owner`` (a user) becomes its first owner when given."""
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(slug=slug, name=name, max_panels=max_panels)
            if owner is not None:
                Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    except IntegrityError:
        raise ServiceError(ErrorCode.INVALID_REQUEST, f"A workspace with slug '{slug}' already exists") from None
    return workspace


def update_workspace(workspace: Workspace, **fields: Any) -> Workspace:
    """Change the workspace's own fields (name, and for staff max_panels and settings)."""
    with transaction.atomic():
        locked = _locked(workspace)
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=[*fields, "updated_at"])
    return locked


@in_worker
def _panels_of(workspace: Workspace) -> list[Panel]:
    return list(Panel.objects.filter(workspace_id=workspace.pk).select_related("workspace"))


@in_worker
def _delete_row(workspace: Workspace, force: bool) -> bool:
    """Delete the workspace unless panels appeared meanwhile (then False: delete those first)."""
    with transaction.atomic():
        locked = Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        if locked is None:
            return True
        if not force and Panel.objects.filter(workspace=locked).exists():
            return False
        locked.delete()
        _announce_after_commit(workspace.pk, None)
    return True


async def delete_workspace(workspace: Workspace, actor: str = "") -> None:
    """Delete each panel through the panel service, then the workspace and its memberships."""
    for round_number in range(DELETE_ROUNDS):
        for panel in await _panels_of(workspace):
            await panel_service.delete_panel(panel, actor)
        if await _delete_row(workspace, force=round_number == DELETE_ROUNDS - 1):
            return


# ---------------------------------------------------------------- members


def _membership(workspace: Workspace, user: Any) -> Membership:
    membership = (
        Membership.objects.select_related("user").filter(workspace=workspace, user=user).first()
    )
    if membership is None:
        username = getattr(user, "username", user)
        raise ServiceError(ErrorCode.NOT_FOUND, f"'{username}' is not a member of '{workspace.slug}'")
    return membership


def _keep_an_owner(membership: Membership) -> None:
    """Refuse taking the owner role from the workspace's last owner (its row is locked)."""
    if membership.role != Role.OWNER:
        return
    owners = Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER).count()
    if owners <= 1:
        raise ServiceError(ErrorCode.INVALID_REQUEST, LAST_OWNER)


def add_member(workspace: Workspace, user: Any, role: str = Role.VIEWER) -> Membership:
    with transaction.atomic():
        locked = _locked(workspace)
        if Membership.objects.filter(workspace=locked, user=user).exists():
            raise ServiceError(
                ErrorCode.INVALID_REQUEST, f"'{user.get_username()}' is already a member; change the role instead"
            )
        return Membership.objects.create(workspace=locked, user=user, role=role)


def ensure_member(workspace: Workspace, user: Any, role: str) -> Membership:
    """The user's membership, added with ``role`` when missing (an existing role is kept)."""
    with transaction.atomic():
        locked = _locked(workspace)
        membership, _ = Membership.objects.get_or_create(workspace=locked, user=user, defaults={"role": role})
    return membership


def change_role(workspace: Workspace, user: Any, role: str) -> Membership:
    """A lower role takes effect on the member's open sockets at once."""
    with transaction.atomic():
        locked = _locked(workspace)
        membership = _membership(locked, user)
        if role == membership.role:
            return membership
        if role != Role.OWNER:
            _keep_an_owner(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        _announce_after_commit(locked.pk, membership.user_id)
    return membership


def remove_member(workspace: Workspace, user: Any) -> None:
    """The member's open sockets in this workspace close with 4403."""
    with transaction.atomic():
        locked = _locked(workspace)
        membership = _membership(locked, user)
        _keep_an_owner(membership)
        membership.delete()  # membership_deleted tells the member's sockets
