package fr.vtdui.hapi;

import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.Locale;
import javax.sql.DataSource;

/**
 * The database behind the server, told from its JDBC URL: H2 (default, in memory or on file) or PostgreSQL.
 *
 * <p>Chooses HAPI's Hibernate dialect, gives a description safe to log (no query parameters, hence no
 * password) and checks at start-up that the database answers, so that a wrong URL stops the server with a
 * readable reason instead of a half-started server.
 */
public enum Database {
	/** H2, in memory ({@code jdbc:h2:mem:}) or on file ({@code jdbc:h2:file:}). */
	H2(HapiFhirH2Dialect.class.getName()),
	/** PostgreSQL ({@code jdbc:postgresql://host:port/db}), HAPI's supported production database. */
	POSTGRESQL(HapiFhirPostgresDialect.class.getName());

	private final String dialect;

	Database(String dialect) {
		this.dialect = dialect;
	}

	/** The HAPI Hibernate dialect class name for this database. */
	public String dialect() {
		return dialect;
	}

	/**
	 * The database of a JDBC URL.
	 *
	 * @throws IllegalArgumentException neither H2 nor PostgreSQL
	 */
	public static Database of(String jdbcUrl) {
		String url = jdbcUrl == null ? "" : jdbcUrl.trim().toLowerCase(Locale.ROOT);
		if (url.startsWith("jdbc:h2:")) {
			return H2;
		}
		if (url.startsWith("jdbc:postgresql:")) {
			return POSTGRESQL;
		}
		throw new IllegalArgumentException("unsupported database URL " + describe(jdbcUrl)
				+ ": the launcher runs on H2 (jdbc:h2:...) or PostgreSQL (jdbc:postgresql://host:port/db)");
	}

	/**
	 * The JDBC URL without its parameters ({@code ?...} or {@code ;...}), which may carry a password.
	 *
	 * @param jdbcUrl a JDBC URL, possibly {@code null}
	 */
	public static String describe(String jdbcUrl) {
		if (jdbcUrl == null || jdbcUrl.isBlank()) {
			return "(no URL)";
		}
		String url = jdbcUrl.trim();
		int cut = url.length();
		for (char c : new char[] {'?', ';'}) {
			int at = url.indexOf(c);
			if (at >= 0 && at < cut) {
				cut = at;
			}
		}
		// jdbc:postgresql://user:secret@host/db is not valid JDBC, but never log what such a URL would carry.
		String kept = url.substring(0, cut);
		int at = kept.indexOf('@');
		if (at >= 0) {
			int scheme = kept.indexOf("//");
			kept = kept.substring(0, scheme >= 0 ? scheme + 2 : 0) + kept.substring(at + 1);
		}
		return kept;
	}

	/**
	 * Opens and closes one connection.
	 *
	 * @throws IllegalStateException the database does not answer; the message names it and gives the driver's
	 *     reason (connection refused, authentication failed, unknown database...)
	 */
	public static void check(DataSource dataSource, String jdbcUrl) {
		try (Connection connection = dataSource.getConnection()) {
			if (!connection.isValid(10)) {
				throw new IllegalStateException("database " + describe(jdbcUrl) + " does not answer");
			}
		} catch (SQLException | RuntimeException e) {
			// Hikari rethrows the driver's SQLException, or wraps it in a PoolInitializationException.
			Throwable reason = e.getCause() instanceof SQLException && !(e instanceof SQLException) ? e.getCause() : e;
			throw new IllegalStateException(
					"cannot connect to the database " + describe(jdbcUrl) + ": " + reason.getMessage(), e);
		}
	}
}
