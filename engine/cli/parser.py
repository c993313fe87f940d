"""The ``genai`` argument parser: every command, its options, help text and examples."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from . import commands as cmd

EXIT_CODES = """\
exit codes:
  0    success
  1    a call failed (success=False), a demo provider failed, or a file has errors (check)
  2    usage or configuration error: bad arguments, unknown provider, missing API key,
       broken provider file, a request the model cannot take
  3    the gateway could not start serving (serve)
  130  interrupted (Ctrl-C)
"""

ENVIRONMENT = """\
environment:
  GENAI_PROVIDERS_PATH      extra folders of provider files (separated by ':'), later ones win
  GENAI_PRICING_FILE        a pricing file that overrides the bundled prices
  GENAI_DEFAULT_MODEL       the model used when -m is not given
  GENAI_<NAME>_API_KEY      a provider's API key (or the env variable its file names)
  GENAI_<NAME>_BASE_URL     a provider's base URL
  GENAI_GATEWAY_CONFIG      the config file of the gateway (serve, usage)
  GENAI_REDIS_URL           the Redis that gateway replicas share limits through
  NO_COLOR                  set to turn colours off
"""


class _Parser(argparse.ArgumentParser):
    """``genai pricing audit`` is the command ``pricing-audit``: ``pricing`` itself takes provider names, and an
    argparse parser cannot have both a list of positionals and subcommands."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        import sys

        words = list(sys.argv[1:] if args is None else args)
        for i, word in enumerate(words):
            if not word.startswith("-"):
                if word == "pricing" and words[i + 1:i + 2] == ["audit"]:
                    words[i:i + 2] = ["pricing-audit"]
                break
        return super().parse_known_args(words, namespace)


class _Formatter(argparse.HelpFormatter):
    """Wraps description paragraphs to the terminal; indented lines (examples, tables) keep their layout."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        lines: list[str] = []
        for line in text.splitlines():
            if line.startswith(" ") or not line:
                lines.append(indent + line)
            else:
                lines += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent)
        return "\n".join(lines)


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """Options every command takes, before or after its name."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--debug", action="store_true", default=default(False),
                        help="show the full traceback of an error")
    parser.add_argument("--no-color", action="store_true", default=default(False),
                        help="no colours (also: NO_COLOR=1; colours are only used on a terminal)")
    parser.add_argument("-P", "--providers-path", action="append", metavar="DIR", default=default(None),
                        help="also read provider files from DIR (repeatable; after GENAI_PROVIDERS_PATH)")


def _call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="*", metavar="PROMPT",
                        help="the prompt (words are joined); read from stdin when absent or '-' (unless --messages)")
    parser.add_argument("-m", "--model", metavar="PROVIDER/MODEL",
                        help="e.g. openai/gpt-4o-mini; a bare provider name uses its default model "
                             "(default: GENAI_DEFAULT_MODEL)")
    parser.add_argument("-s", "--system", metavar="TEXT", help="a system prompt")
    parser.add_argument("-t", "--temperature", type=float, metavar="T", help="sampling temperature (default 0.7)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="most output tokens")
    parser.add_argument("--schema", metavar="FILE", help="JSON Schema (JSON or YAML file): ask for JSON output")
    parser.add_argument("--messages", metavar="FILE",
                        help="a whole conversation: a JSON list of messages in OpenAI's chat shape (tool calls, tool "
                             "results, content parts), or an object with 'messages' and request fields such as "
                             "'tools'; '-' reads stdin. PROMPT, if given, is appended as a user message")
    parser.add_argument("--tools", metavar="FILE",
                        help="function tools: a JSON (or YAML) list of {type: function, function: {name, description, "
                             "parameters}}")
    parser.add_argument("--tool-choice", metavar="CHOICE",
                        help="auto, none, required, or the name of one tool")
    parser.add_argument("--image", action="append", metavar="PATH|URL",
                        help="attach an image to the last user message (a file is sent as data; repeatable)")
    parser.add_argument("--file", action="append", metavar="PATH",
                        help="attach a document (PDF) to the last user message (repeatable)")
    parser.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                        help="a request option (stop, top_p, seed, presence_penalty, frequency_penalty, user) or a "
                             "provider-specific body field, e.g. -o seed=42 (value read as JSON if it parses)")


def _embedding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dimensions", type=int, metavar="N", help="shorter vectors, where the model can")
    parser.add_argument("--input-type", choices=["query", "document", "classification", "clustering"],
                        help="what the texts are for (models that embed queries and documents differently)")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="genai", formatter_class=_Formatter,
        description="Call any LLM provider from the terminal, and check, inspect and try provider files.\n"
                    "Every command has --help with examples.",
        epilog="examples:\n"
               "  genai demo                                   offline self-test of every provider\n"
               "  genai complete -m openai/gpt-4o-mini \"Hi\"    stream a reply; tokens, cost, time on stderr\n"
               "  genai providers                              providers, their key variables, stream formats\n"
               "  genai check my-providers/acme.yaml           validate a provider file\n"
               "  genai render -m anthropic \"Hi\"               the exact HTTP request, not sent\n\n"
               + ENVIRONMENT + "\n" + EXIT_CODES)
    _common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"genai {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                     parser_class=argparse.ArgumentParser)
    common = argparse.ArgumentParser(add_help=False)
    _common(common, top=False)

    def command(name: str, run: Any, summary: str, description: str, examples: str,
                aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, aliases=list(aliases), parents=[common], help=summary,
                                  description=description, epilog="examples:\n" + examples,
                                  formatter_class=_Formatter)
        sub.set_defaults(run=run)
        return sub

    sub = command(
        "complete", cmd.cmd_complete, "send a prompt to a model and print the reply",
        "Send a prompt to any model. The reply streams to stdout; model, tokens, cost and latency follow on "
        "stderr.\n\n--json prints the whole unified response instead (for scripts). Exit code 1 when the call "
        "fails.",
        "  genai complete -m openai/gpt-4o-mini \"Write a haiku about YAML\"\n"
        "  echo \"Summarise: ...\" | genai complete -m anthropic/claude-haiku-4-5\n"
        "  genai chat -m groq -s \"Answer in French\" \"Hello\"\n"
        "  genai complete -m openai/gpt-4.1-mini --schema city.json \"Largest city in France?\" --json | "
        "jq -r .content\n"
        "  genai complete -m ollama/llama3.2 -t 0 -o seed=42 --no-stream \"Hi\"",
        aliases=["chat"])
    _call_arguments(sub)
    sub.add_argument("--no-stream", action="store_true", help="one plain call instead of a stream")
    sub.add_argument("--json", action="store_true", help="print the whole unified response as JSON")

    sub = command(
        "providers", cmd.cmd_providers, "list providers; 'providers show NAME' prints one resolved file",
        "List every provider (bundled and from GENAI_PROVIDERS_PATH): models, default model, the env variable "
        "of its API key and whether it is set, and its stream format.",
        "  genai providers\n  genai providers --json | jq -r '.[].name'\n  genai providers show groq\n"
        "  genai providers show groq --defaults")
    sub.add_argument("--json", action="store_true", help="print JSON")
    shows = sub.add_subparsers(dest="providers_command", title="subcommands", metavar="show")
    show = shows.add_parser("show", parents=[common], formatter_class=_Formatter,
                            help="print a provider file as the engine reads it ('extends' resolved)",
                            description="Print a provider file as the engine reads it: its 'extends' chain "
                                        "merged, keys in the reference order.",
                            epilog="examples:\n  genai providers show groq\n  genai providers show anthropic "
                                   "--defaults --json")
    show.add_argument("name", metavar="NAME", help="provider name")
    show.add_argument("--defaults", action="store_true", help="also show the keys left at their defaults")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")

    sub = command(
        "models", cmd.cmd_models, "list models with prices and context windows",
        "List every model of every provider (or of the given providers) with context window, output limit "
        "and price (USD per million tokens).",
        "  genai models\n  genai models openai anthropic\n  genai models --json | jq '.[] | "
        "select(.price == null)'")
    sub.add_argument("providers", nargs="*", metavar="PROVIDER", help="only these providers")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "check", cmd.cmd_check, "validate provider and pricing files (errors as file:line: key: message)",
        "Validate provider files and pricing files the way the engine loads them: YAML, keys and types, "
        "'extends', templates and JSONPath (compiled, and rendered for sample requests). Problems print like "
        "a compiler's, as file:line: key: message. Listed paid models without a price are warnings.\n\n"
        "Without FILES: every bundled and GENAI_PROVIDERS_PATH provider file, pricing.yaml and "
        "GENAI_PRICING_FILE. A file whose name contains 'pricing' is checked as a pricing file. A provider "
        "file is checked with its own folder loaded, so 'extends' finds its neighbours.\n\n"
        "Exit code 1 when there is an error.",
        "  genai check\n  genai check my-providers/acme.yaml\n  genai check my-providers/\n"
        "  genai check --pricing my-prices.yaml")
    sub.add_argument("files", nargs="*", metavar="FILE", help="provider files, pricing files or folders")
    sub.add_argument("--pricing", action="append", metavar="FILE", help="check FILE as a pricing file")

    sub = command(
        "render", cmd.cmd_render, "print the exact HTTP request a call would send, without sending it",
        "Print the HTTP request a call would send: method, URL, headers (API key shown as ***) and the "
        "body, pretty-printed. Nothing is sent. Without an API key a placeholder is used.",
        "  genai render -m openai/gpt-4o-mini \"Hello\"\n  genai render -m anthropic -s \"Be brief\" --stream "
        "\"Hello\"\n  genai render -m groq --schema city.json --json \"Largest city?\" | jq .body")
    _call_arguments(sub)
    sub.add_argument("--stream", action="store_true", help="render the streamed variant of the call")
    sub.add_argument("--embed", action="store_true",
                     help="render an embeddings call instead: each PROMPT argument is one text (one request per "
                          "batch is shown)")
    _embedding_options(sub)
    sub.add_argument("--json", action="store_true", help="print method, url, headers and body as JSON")

    sub = command(
        "embed", cmd.cmd_embed, "turn texts into vectors with an embedding model",
        "Embed texts: each TEXT argument is one input (or each line of --input, or of stdin when there are none). "
        "Prints each vector's first values and length; model, tokens, cost and latency follow on stderr. --json "
        "prints the whole unified response (every vector). Long lists are sent in the provider's batch size. "
        "Exit code 1 when the call fails.",
        "  genai embed -m openai/text-embedding-3-small \"The capital of France\" \"Paris\"\n"
        "  genai embed -m cohere --input-type query \"Where is Paris?\"\n"
        "  genai embed -m voyage/voyage-4 --input docs.txt --json | jq '.vectors | length'\n"
        "  genai embed -m ollama/nomic-embed-text --dimensions 256 \"hello\"")
    sub.add_argument("texts", nargs="*", metavar="TEXT", help="the texts, one vector each")
    sub.add_argument("-m", "--model", metavar="PROVIDER/MODEL",
                     help="e.g. openai/text-embedding-3-small; a bare provider name uses its default embedding model")
    sub.add_argument("--input", metavar="FILE", help="read the texts from FILE, one per line ('-': stdin)")
    _embedding_options(sub)
    sub.add_argument("--json", action="store_true", help="print the whole unified response as JSON")

    sub = command(
        "cost", cmd.cmd_cost, "the price of given token counts for a model",
        "Compute the exact cost of token counts with the engine's prices. INPUT_TOKENS counts every input "
        "token, cached ones included; it is also the prompt size that picks a long-context tier. The rules "
        "that chose the rates are printed.",
        "  genai cost openai/gpt-4o-mini 1000 500\n  genai cost anthropic/claude-sonnet-4-6 20000 800 "
        "--cached 15000\n  genai cost gemini/gemini-2.5-pro 1000000 2000 --cached 600000\n"
        "  genai cost deepseek/deepseek-flash 100000 2000 --at 2026-12-05T02:00\n"
        "  genai cost openai/gpt-5.5 300000 1000 --service-tier flex\n"
        "  genai cost groq 1000000 1000000 --json")
    sub.add_argument("model", metavar="PROVIDER/MODEL")
    sub.add_argument("input_tokens", type=int, metavar="INPUT_TOKENS")
    sub.add_argument("output_tokens", type=int, metavar="OUTPUT_TOKENS")
    sub.add_argument("--cached", type=int, default=0, metavar="N", help="input tokens read from the cache")
    sub.add_argument("--cache-write", type=int, default=0, metavar="N", help="input tokens written to the cache")
    sub.add_argument("--cache-write-1h", type=int, default=0, metavar="N",
                     help="of those, tokens written with a one-hour lifetime")
    sub.add_argument("--service-tier", metavar="TIER", help="the service tier the reply reports (flex, priority, "
                                                            "batch, ...)")
    sub.add_argument("--at", metavar="WHEN", help="when the request started, a UTC date or time (default: now); "
                                                 "prices by the hour and dated price changes read it")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "pricing", cmd.cmd_pricing, "the price table (USD per million tokens); 'pricing audit' checks it",
        "Print every known price after precedence: a provider file's own 'pricing' < the bundled pricing.yaml "
        "< GENAI_PRICING_FILE (each merges into the one below, field by field), with the rules that change a "
        "price (prompt-size tiers, hours, service tiers, dated changes).\n\n"
        "'genai pricing audit' compares the prices with pydantic's genai-prices (see its --help).",
        "  genai pricing\n  genai pricing anthropic\n  GENAI_PRICING_FILE=my-prices.yaml genai pricing --json\n"
        "  genai pricing audit")
    sub.add_argument("providers", nargs="*", metavar="PROVIDER", help="only these providers")
    sub.add_argument("--json", action="store_true", help="print JSON")

    # `genai pricing audit` (`_Parser` routes "pricing audit" here).
    sub = commands.add_parser(
        "pricing-audit", parents=[common], formatter_class=_Formatter, prog="genai pricing audit",
        description="Compare the prices (bundled, provider files and GENAI_PRICING_FILE, merged) with pydantic's "
                    "genai-prices, for every model both know. Rates are compared where they apply: now (or --at), at "
                    "every later price change either side has scheduled, at each prompt size where a tier starts, "
                    "every hour of the week for hourly prices, and in each service tier both list. Differences "
                    "listed in the bundled price-audit.yaml (or a --known file) are explained, each with its reason "
                    "and source; the others are printed with both sources.\n\nNeeds the [audit] extra "
                    "(pip install 'genai-engine[audit]'). Exit code 1 when a disagreement is unexplained: run it on "
                    "your override file to keep it honest.",
        epilog="examples:\n  genai pricing audit\n  genai pricing audit openai anthropic --all\n"
               "  GENAI_PRICING_FILE=my-prices.yaml genai pricing audit --known my-differences.yaml\n"
               "  genai pricing audit --at 2027-01-01 --json")
    sub.set_defaults(run=cmd.cmd_pricing_audit)
    sub.add_argument("providers", nargs="*", metavar="PROVIDER", help="only these providers")
    sub.add_argument("--at", metavar="WHEN", help="compare the prices in effect at this UTC date or time "
                                                 "(default: now)")
    sub.add_argument("--known", action="append", metavar="FILE",
                     help="more known differences, in price-audit.yaml's format (repeatable)")
    sub.add_argument("--all", action="store_true",
                     help="also list the explained differences and the models genai-prices does not know")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "schema", cmd.cmd_schema, "the JSON Schema of provider files (for editors)",
        "Print the JSON Schema of the provider-file format, generated from the engine's models. Point your "
        "editor at it: the YAML language server reads a first line\n"
        "  # yaml-language-server: $schema=<path or URL of the schema>",
        "  genai schema -o my-providers/provider.schema.json\n  genai schema --check schema/provider.schema.json")
    group = sub.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from the generated schema")

    sub = command(
        "docs", cmd.cmd_docs, "the provider-file key reference, or the providers table (markdown)",
        "Print the key reference of the provider-file format, generated from the engine's models (or with "
        "--providers the table of providers, generated from their files and prices), or update the generated "
        "part of a markdown file (between its BEGIN/END GENERATED markers).",
        "  genai docs | less\n  genai docs --write docs/provider-format.md\n"
        "  genai docs --check docs/provider-format.md\n  genai docs --providers --write README.md")
    sub.add_argument("--providers", action="store_true", help="the providers table instead of the key reference")
    group = sub.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="update the generated part of FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if the generated part of FILE is out of date")

    sub = command(
        "record", cmd.cmd_record, "record golden fixtures of a provider file against the live API",
        "Call the live API (with your key) once for each standard scenario the provider can take: a plain "
        "request, a conversation, a stream, JSON output, tool calls (streamed and not) and a wrong key. Writes "
        "<name>.tests/ next to the provider file: the rendered requests (golden/, keys shown as ***), the replies "
        "as they came (replies/, echoed keys masked, only the headers the file reads) and what the engine made "
        "of them (expected.yaml). Review them, then use 'genai test'.",
        "  genai record acme\n  genai record acme -m acme-small\n  genai record acme --out tests/acme-fixtures")
    sub.add_argument("provider", metavar="PROVIDER")
    sub.add_argument("-m", "--model", metavar="MODEL", help="the model to record with (default: the default model)")
    sub.add_argument("--out", metavar="DIR", help="where to write (default: <name>.tests/ beside the file)")

    sub = command(
        "test", cmd.cmd_test, "replay recorded fixtures offline: golden requests, replies, streams",
        "Check provider files against what 'genai record' wrote, offline: every scenario's request must render "
        "as its golden file, and every recorded reply (streams in 1-, 7- and 4096-byte pieces) must give what "
        "expected.yaml says. --update rewrites the golden files and expectations; read their diff. Exit code 1 "
        "when a check fails.",
        "  genai test acme\n  genai test acme other\n  genai test acme --update")
    sub.add_argument("providers", nargs="+", metavar="PROVIDER")
    sub.add_argument("--dir", metavar="DIR", help="where the fixtures are (default: <name>.tests/ beside the file)")
    sub.add_argument("--update", action="store_true", help="rewrite golden files and expected.yaml")

    sub = command(
        "demo", cmd.cmd_demo, "offline self-test: every provider against the bundled local server",
        "Offline self-test. Starts the bundled fake server (engine.testing) on 127.0.0.1 and runs "
        "every provider whose wire format it speaks (OpenAI chat and Responses, Anthropic, Ollama, Gemini, Cohere) "
        "end to end through the engine: request template, real HTTP over loopback, stream parsing, cost. "
        "Checks each reply against "
        "what the server sent and prints a table. No network, no API keys, no cost. Providers in other "
        "formats (and Python backends) are listed as skipped. Exit code 1 when a provider fails.",
        "  genai demo\n  genai demo --provider groq --provider anthropic\n  genai demo --no-stream --json")
    sub.add_argument("--provider", action="append", metavar="NAME", help="only this provider (repeatable)")
    sub.add_argument("--no-stream", action="store_true", help="plain calls instead of streams")
    sub.add_argument("--json", action="store_true", help="print the results as JSON")

    sub = command(
        "serve", cmd.cmd_serve, "run the gateway: every provider behind one OpenAI- and Anthropic-compatible server",
        "Serve POST /v1/chat/completions and POST /v1/embeddings (OpenAI), POST /v1/messages (Anthropic), "
        "GET /v1/models, /health, /ready "
        "and /metrics for every configured provider and route, with gateway keys, budgets, rate limits, fallbacks "
        "and a spend ledger. The config file is described in docs/gateway.md. Needs the server extra: "
        "pip install 'genai-engine[server]'. With GENAI_REDIS_URL set, budgets, rate limits and cooldowns are "
        "shared by every replica (the redis extra).\n\nPrints 'LISTENING http://HOST:PORT' once the port is "
        "bound; logs are JSON lines on stderr. SIGTERM or Ctrl-C lets open streams finish.",
        "  genai serve --config gateway.yaml\n"
        "  genai serve --config gateway.yaml --host 0.0.0.0 --port 8080 --workers 4\n"
        "  GENAI_REDIS_URL=redis://redis:6379/0 genai serve --config gateway.yaml\n"
        "  curl localhost:4000/v1/chat/completions -H \"Authorization: Bearer $KEY\" \\\n"
        "       -d '{\"model\": \"openai/gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'")
    sub.add_argument("-c", "--config", metavar="FILE", help="the gateway config (default: GENAI_GATEWAY_CONFIG)")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=4000, help="port (default: 4000; 0: any free port)")
    sub.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    sub.add_argument("--no-access-log", action="store_true", help="no access line per request")
    sub.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                     help="log level (default: info)")

    sub = command(
        "usage", cmd.cmd_usage, "spend by key, provider, model and day, from the gateway's ledger",
        "Sum the gateway's ledger: requests, errors, tokens and cost, grouped by key, provider, model, day, route "
        "or api. The ledger is the file named by the config's state.sqlite (one per replica: give each with "
        "--db to add them up). Days are UTC.",
        "  genai usage --config gateway.yaml\n"
        "  genai usage --db genai-gateway.db --by key,day --since 2026-12-01\n"
        "  genai usage --db replica-a.db --db replica-b.db --by provider,model --json")
    sub.add_argument("-c", "--config", metavar="FILE", help="the gateway config whose ledger to read")
    sub.add_argument("--db", action="append", metavar="FILE", help="a ledger file (repeatable; instead of --config)")
    sub.add_argument("--by", action="append", default=None, metavar="FIELDS",
                     help="group by these, comma-separated: key, provider, model, day, route, api (default: key)")
    sub.add_argument("--since", metavar="YYYY-MM-DD", help="from this UTC day")
    sub.add_argument("--until", metavar="YYYY-MM-DD", help="up to this UTC day (included)")
    sub.add_argument("--key", metavar="NAME", help="only this gateway key")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = command(
        "keys", cmd.cmd_keys, "make a gateway key, or hash one for the gateway config",
        "'new' prints a fresh random key on stdout and, on stderr, the config line with its SHA-256 (the gateway "
        "keeps only the hash). 'hash' prints the SHA-256 of a key read from stdin.",
        "  genai keys new --name team-search\n  echo -n \"$KEY\" | genai keys hash")
    sub.add_argument("keys_command", choices=["new", "hash"], metavar="new|hash")
    sub.add_argument("--name", default="my-key", help="the key's name in the printed config line")
    return parser
