"""Console page for HQ admins: operator accounts (create with a role and store scope, disable,
enable, reset the password, unlock) through ``app.operators.services``, as the CLI does. Every
change is a console write, so the write audit records it."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

import app.console.forms as forms
from app.console.auth import operator_required
from app.console.views import bp
from app.extensions import db
from app.operators import authz
from app.operators import services as operators
from app.operators.models import ROLES
from app.stores.models import Store


@bp.route("/operators", methods=["GET", "POST"])
@operator_required
def operators_page():
    authz.check_hq_admin()
    if request.method == "POST":
        action = request.form.get("action")
        if action == "create":
            codes = request.form.getlist("stores")
            operator = operators.create_operator(
                forms.text("username"),
                request.form.get("password", ""),
                forms.text("name"),
                forms.text("role"),
                [c for c in codes if c],
            )
            flash(_("Operator %(name)s created.", name=operator.username), "ok")
        else:
            operator_id = forms.whole("operator_id") or 0
            if action == "disable":
                operators.set_status(operator_id, "disabled")
                flash(_("Operator disabled: their sessions have ended."), "ok")
            elif action == "enable":
                operators.set_status(operator_id, "active")
                flash(_("Operator enabled."), "ok")
            elif action == "unlock":
                operators.unlock(operator_id)
                flash(_("Operator unlocked."), "ok")
            elif action == "password":
                operators.reset_password(operator_id, request.form.get("password", ""))
                flash(_("Password reset: their sessions have ended."), "ok")
        return redirect(url_for("console.operators_page"))
    stores = db.session.scalars(select(Store).order_by(Store.code)).all()
    return render_template(
        "console/operators.html",
        items=operators.list_operators(),
        roles=ROLES,
        stores=stores,
        store_codes={s.id: s.code for s in stores},
    )
