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
      "sources": ["src/addon.cc", "src/handle.cc", "src/listen.cc", "src/poll.cc", "src/fdpass.cc",
                  "src/sock.cc", "src/sockaddr.cc",
                  "src/splice_relay.cc", "src/splice_loop.cc", "src/splice_conn.cc", "src/splice_pump.cc",
                  "src/splice_http.cc", "src/splice_watch.cc",
                  "src/repair_dump.cc", "src/repair_restore.cc", "src/nft.cc", "src/nft_msg.cc", "src/nft_netns.cc",
                  "src/migrate_out.cc", "src/repair_state.cc"]
    }
  ]
}
