"""Request and response shapes of a panel's update in place and of its revisions."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from workspaces.api.serializers import ExecutionErrorSerializer, SourceField
from workspaces.models import PanelRevision
from workspaces.services.panels.updates import MAX_MESSAGE_LENGTH


class _Closed(serializers.Serializer):
    """Unknown fields are refused rather than ignored (a typo must not pass silently)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError(f"Unknown field(s): {', '.join(unknown)}")
        return attrs


class MessageField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_blank=True, max_length=MAX_MESSAGE_LENGTH, trim_whitespace=False,
                         help_text="What changed, in a few words; shown in the panel's history.", **kwargs)


class PanelUpdateSerializer(_Closed):
    source = SourceField()  # type: ignore[assignment]  # the API's field name shadows Field.source
    message = MessageField()
    baseRevision = serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="The revision the new source was edited from; when another revision was saved since, "
                  "the update is refused with 409 REVISION_CONFLICT.",
    )


class RestoreSerializer(_Closed):
    message = MessageField()


class MigrationSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField(), help_text="New keys, at their default.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="Keys no longer declared, dropped.")
    reset = serializers.ListField(child=serializers.CharField(),
                                  help_text="Keys whose type changed, back to their new default.")
    converted = serializers.ListField(child=serializers.CharField(),
                                      help_text="Keys whose type changed, their value converted losslessly.")


class PanelUpdateResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    revision = serializers.IntegerField(help_text="The panel's revision now.")
    created = serializers.BooleanField(help_text="False when the source equals the current revision's: "
                                                 "nothing was stored.")
    migration = MigrationSerializer()
    state = serializers.JSONField()
    stateVersion = serializers.IntegerField()
    updateError = ExecutionErrorSerializer(required=False,
                                           help_text="Present when the `update` lifecycle handler failed.")


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    contentHash = serializers.CharField(source="content_hash", help_text="SHA-256 of the source, in hex.")

    class Meta:
        model = PanelRevision
        fields = ["number", "author", "createdAt", "message", "contentHash"]
        read_only_fields = fields

    def get_author(self, revision: PanelRevision) -> str | None:
        return revision.author.get_username() if revision.author is not None else None


class RevisionDetailSerializer(RevisionSerializer):
    source = serializers.CharField(help_text="The NXML of this revision.")  # type: ignore[assignment]

    class Meta(RevisionSerializer.Meta):
        fields = [*RevisionSerializer.Meta.fields, "source"]
        read_only_fields = fields
