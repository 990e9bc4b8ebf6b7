# Two entry points (README.md): `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080
# the real peers of the WHIP/WHEP and SFU tests: Janus, GStreamer's WebRTC stack, Meetecho's WHIP client
WEBRTC_PEERS := janus simple-whip-client gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-nice python3-gi gir1.2-gst-plugins-bad-1.0

.PHONY: setup peers demo test

$(PY):
	python3 -m venv $(VENV)

setup: $(PY)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"

peers:
	@{ command -v janus && command -v whip-client && gst-inspect-1.0 webrtcbin; } >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(WEBRTC_PEERS) >/dev/null; }

demo: setup
	$(VENV)/bin/realtime serve --port $(PORT)

test: setup peers
	$(PY) -m pytest -q
