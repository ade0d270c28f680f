"""PATCH bodies, the same way in every service.

A field left out of a PATCH keeps its value; a field sent is changed. Every
field therefore defaults to ``None``, and ``None`` cannot also mean "leave it":
an explicit ``null`` for a field that cannot be empty (a name, a list of
subjects) is a client's mistake and is refused with 422 ``NULL_NOT_ALLOWED``,
together with every other problem of the body. A field whose null is a value
(it clears an optional field) says so in its type with :data:`NULL_CLEARS`::

    class ExamPatch(PatchModel):
        name: Label | None = None                           # null refused
        term: Annotated[Term | None, NULL_CLEARS] = None    # null clears the term

The route reads what the client sent with :meth:`PatchModel.sent_fields`
(``exclude_unset``), never by comparing with ``None``. The JSON schema (and so
the OpenAPI document) says the same: a field whose null is refused is not
nullable there, and no field has a default.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationInfo, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from service_kit.detail_codes import DetailCode


class _NullClears:
    """Annotation marker: null is a value of this PATCH field (it clears it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_CLEARS"


NULL_CLEARS: Final = _NullClears()


class PatchModel(BaseModel):
    """Base of PATCH bodies: unknown fields and nulls of non-clearable fields are 422."""

    # Unknown fields are refused, so a typo such as "fullname" does not
    # silently change nothing.
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for fields the client sent: defaults are not validated.
        name = info.field_name
        if value is not None or name is None:
            return value
        if any(m is NULL_CLEARS for m in cls.model_fields[name].metadata):
            return value
        raise PydanticCustomError(
            DetailCode.NULL_NOT_ALLOWED.value.lower(),
            "{field} cannot be null; leave it out to keep it as it is",
            {"field": name},
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = super().__get_pydantic_json_schema__(core_schema, handler)
        target = handler.resolve_ref_schema(json_schema)
        for name, prop in target.get("properties", {}).items():
            field = cls.model_fields.get(name)
            # "Left out" is not null: the None default says nothing a client may send.
            prop.pop("default", None)
            if field is None or any(m is NULL_CLEARS for m in field.metadata):
                continue
            alternatives = [s for s in prop.get("anyOf", ()) if s != {"type": "null"}]
            if "anyOf" in prop and len(alternatives) == 1:
                # The field's own keywords (json_schema_extra) win over the type's.
                outer = {k: v for k, v in prop.items() if k != "anyOf"}
                prop.clear()
                prop.update({**alternatives[0], **outer})
            elif "anyOf" in prop:
                prop["anyOf"] = alternatives
        return json_schema

    def sent_fields(self) -> dict[str, Any]:
        """The fields the client sent, by name, in declaration order (``exclude_unset``).

        Values are the parsed ones, nested models included (unlike
        ``model_dump(exclude_unset=True)``, which turns them into dicts).
        """
        sent = self.model_fields_set
        return {name: getattr(self, name) for name in type(self).model_fields if name in sent}
