# Two commands on a fresh machine:  `make run`  and  `make test`.
# Everything else here is what those two need.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt | sha1sum | cut -c1-12)

.PHONY: run test lint install messages lock clean-var browser-deps

# exec: make's child is manage.py itself, so a Ctrl-C that it handles as a normal stop is not
# reported by an interrupted shell as "make: *** [run] Interrupt".
run: install
	DEBUG=$${DEBUG:-1} exec $(PY) manage.py run

test: install browser-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff: pyflakes, pycodestyle, import order, bugbear, pyupgrade (settings in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

install: $(STAMP) messages

# The stamp's name carries a hash of the requirements, so editing them reinstalls.
$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned dependencies into $(VENV) (a few minutes the first time)…"
	$(PY) -m pip install -qq -r requirements.txt
	@# facenet-pytorch pins ancient torch versions; its real needs are in requirements.txt.
	$(PY) -m pip install -qq --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

# The browser tests' JavaScript (axe-core, the accessibility checker), pinned by
# package-lock.json into node_modules/; never served to visitors.
AXE := node_modules/axe-core/axe.min.js
browser-deps: $(AXE)
$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Compiled with Babel (pure Python) so GNU gettext is not needed to run or test.
messages: $(STAMP)
	$(VENV)/bin/pybabel --quiet compile -d locale -D django

# Regenerate the pinned lock from requirements.in (needs the package index).
lock:
	rm -rf /tmp/racephoto-lock && $(PYTHON) -m venv /tmp/racephoto-lock
	/tmp/racephoto-lock/bin/pip install --quiet -r requirements.in
	( echo "# Pinned lock generated from requirements.in by \`make lock\`. Do not edit by hand."; \
	  echo "# facenet-pytorch is in requirements-nodeps.txt (installed with --no-deps)."; \
	  /tmp/racephoto-lock/bin/pip freeze | grep -vi '^facenet' ) > requirements.txt

# Stops the embedded services and deletes local data (database, media, indexes).
clean-var:
	-$(PY) -c "from racephoto.embedded import *; EmbeddedPostgres('var').stop(); EmbeddedValkey('var').stop()"
	rm -rf var
