{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions"],
    "cflags_cc!": ["-fno-rtti"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"]
  },
  "targets": [
    {
      "target_name": "baton",
      "sources": ["src/addon.cc", "src/handle.cc", "src/listen.cc", "src/poll.cc",
                  "src/fdpass.cc", "src/sock.cc"]
    },
    {
      "target_name": "baton_relay",
      "sources": ["src/relay.cc", "src/relay_loop.cc", "src/relay_pump.cc"]
    }
  ]
}
