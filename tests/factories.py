"""factory_boy factories for the domain models."""

from __future__ import annotations

import functools
import hashlib

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from annotations import models


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


PASSWORD = "correct horse battery staple"


@functools.cache
def _hashed(raw: str) -> str:
    """`raw` hashed once per test process with the production hasher (PBKDF2, 1,000,000
    iterations, ~0.25 CPU-s): personas with the same password share the hash, so creating one
    costs no hashing while each login still checks it the production way."""
    return make_password(raw)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.Transformer(PASSWORD, transform=_hashed)  # an override is hashed too

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            # get_or_create: transactional tests flush the groups the migration created.
            self.groups.add(Group.objects.get_or_create(name=str(extracted))[0])


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Project
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Project {n}")
    label_classes = factory.LazyFunction(lambda: ["Synergistic", "Antagonistic"])


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Interaction

    project = factory.SubFactory(ProjectFactory)
    drug_a = factory.Sequence(lambda n: f"Drugamab{n}")
    drug_b = factory.Sequence(lambda n: f"Otherzole{n}")
    description = factory.LazyAttribute(
        lambda o: f"{o.drug_a} may increase the anticoagulant activities of {o.drug_b}."
    )
    blinded_text = "DRUG_A may increase the anticoagulant activities of DRUG_B."
    pattern_hash = factory.LazyAttribute(lambda o: _sha(o.blinded_text))
    content_hash = factory.LazyAttribute(lambda o: _sha(o.drug_a, o.drug_b, o.description))


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ModelVersion

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    backbone = "tiny-random-bert"
    status = models.ModelVersion.Status.READY


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Prediction

    interaction = factory.SubFactory(InteractionFactory)
    model_version = factory.SubFactory(ModelVersionFactory)
    predicted_class = "Synergistic"
    confidence = 0.8
    margin = 0.6
    probabilities = factory.LazyFunction(lambda: [0.8, 0.2])
