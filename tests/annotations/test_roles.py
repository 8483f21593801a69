from annotations.roles import Role, get_role, has_role


def test_each_role_includes_the_ones_below(reviewer_rita, curator_carl, admin_ada, outsider):
    assert get_role(reviewer_rita) == Role.REVIEWER
    assert has_role(curator_carl, Role.REVIEWER) and has_role(curator_carl, Role.CURATOR)
    assert not has_role(curator_carl, Role.ADMIN)
    assert has_role(admin_ada, Role.ADMIN)
    assert get_role(outsider) is None and not has_role(outsider, Role.REVIEWER)


def test_anonymous_has_no_role():
    from django.contrib.auth.models import AnonymousUser

    assert get_role(AnonymousUser()) is None


def test_default_project_has_the_two_default_classes(project):
    assert project.label_classes == ["Synergistic", "Antagonistic"]
    assert "less metabolism" in project.guideline
