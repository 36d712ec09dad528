# The few commands people type. Both targets set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PKG_STAMP := $(VENV)/.package-stamp

.PHONY: run test lint bench screenshots package clean

# Re-install only when the project's metadata changes; otherwise this is a no-op.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The desktop app; with MODEL=..., a chat with that model in the terminal instead.
run: $(STAMP)
	@$(if $(MODEL),$(BIN)/hearth run "$(MODEL)",$(BIN)/hearth app)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app engine tests bench packaging

$(PKG_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,package]'
	@touch $@

# A frozen build (Hearth.app on a Mac, dist/hearth on Linux), then its smoke test (packaging/README.md).
package: $(PKG_STAMP)
	PYTHON=$(BIN)/python bash packaging/build.sh

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# Pictures for the README from a real window (needs Debian's xvfb: apt-get install xvfb).
screenshots: $(STAMP)
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python docs/make_screenshots.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
