# One image for every nextAuth component:
#   docker run IMAGE            -> nextauth ns (the default command)
#   docker run IMAGE sfs | mc   -> the Second Factor Server or the Message Center
#   docker run IMAGE migrate ns -> apply ns's database migrations and exit
# Settings come from NEXTAUTH_* variables, secrets as NEXTAUTH_..._FILE (docs/configuration.md);
# docker-compose.yml and docs/deployment.md show a production setup.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/nextauth

WORKDIR /src
# What `pip install .` needs: the project metadata (its readme included) and every package it lists
# under [tool.setuptools.packages.find]; nothing else of the work tree (.venv, .nextauth, tests).
COPY pyproject.toml README.md ./
COPY authserver ./authserver
COPY idp ./idp
COPY mobilesdk ./mobilesdk
COPY nextauth ./nextauth
COPY nextauth_core ./nextauth_core
COPY sigmai ./sigmai
RUN /opt/nextauth/bin/pip install .


FROM python:3.11-slim

ENV PATH=/opt/nextauth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NEXTAUTH_DATA_DIR=/var/lib/nextauth

# A fixed numeric uid/gid, so secret files and volumes can be given to it (chown 10001) and
# orchestrators can check runAsNonRoot.
# xmlsec1 signs and checks SAML messages for the IdP (pysaml2 runs it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends xmlsec1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 nextauth \
    && useradd --system --uid 10001 --gid nextauth --home-dir /var/lib/nextauth --no-create-home \
       --shell /usr/sbin/nologin nextauth \
    && install -d -o nextauth -g nextauth -m 0700 /var/lib/nextauth

COPY --from=build /opt/nextauth /opt/nextauth
# The IdP's pages are not Python package data: they live in the repository's templates/ folder.
COPY templates /opt/nextauth/templates
ENV NEXTAUTH_IDP_TEMPLATES_DIR=/opt/nextauth/templates
# The web authenticator (an installable web app the IdP serves at /app/ when configured).
COPY webapp /opt/nextauth/webapp
ENV NEXTAUTH_IDP_WEBAPP_DIR=/opt/nextauth/webapp

USER 10001:10001
WORKDIR /var/lib/nextauth

# ns: REST 8080, browser WebSocket 9999, sigmai 8888, admin 9613; sfs: sigmai 8888, admin 9613;
# mc: REST 8080, gRPC 9090, sigmai 8888, admin 9613 (authserver.config.DEFAULT_PORTS["standalone"]).
EXPOSE 8080 8888 9090 9613 9999

# Liveness on the admin port, 9613 for every command the image runs (the IdP's too: NEXTAUTH_IDP_ADMIN_PORT);
# slim has no curl, so Python's urllib (a non-2xx answer or no answer raises, exiting 1). A deployment
# that moves the admin port or puts TLS on it overrides this check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9613/livez', timeout=4)"]

ENTRYPOINT ["nextauth"]
CMD ["ns"]
