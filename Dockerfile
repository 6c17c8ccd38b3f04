# One image for the three services (and every other ./pipeline command). docker-compose.yml runs it three times.
# Build: docker build -t attribution-pipeline .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Cli/Cli.csproj -c Release -o /app --nologo

FROM mcr.microsoft.com/dotnet/runtime:10.0
# System libraries the services load: OpenBLAS (GEMM); the FashionMNIST files the Simulator reads when batches do not
# carry their inputs. librdkafka comes with the build (librdkafka.redist, under runtimes/; docs/SERVICES.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopenblas0-pthread dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app .
ENTRYPOINT ["dotnet", "/app/pipeline.dll"]
CMD ["help"]
